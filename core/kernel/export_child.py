"""The headless export's child process: runs one script, sends its RunResult back.

    python -m core.kernel.export_child RESULT_FD FAULT_FD TIMEOUT BACKWARD SCRIPT

Started by `main.py`'s `run_child` (never by hand), with the project root as its
working directory, in a session of its own, stdin/stdout/stderr on /dev/null. The flow:

1. faulthandler is enabled on FAULT_FD (a temporary file the parent reads if this
   process dies: a segfault's dump names the script's line).
2. torch and the Runner are imported, *then* the process moves into SCRIPT's folder
   (`os.chdir`, the folder first on `sys.path`, `sys.argv = [SCRIPT]`), so
   `open("data.csv")` and `import helper` next to the script work, while a `torch.py`
   there cannot replace torch.
3. `STARTED` is written to RESULT_FD: the parent's clock for `--timeout` starts.
4. `Runner(grad_limit=None).run(...)` runs the script with TIMEOUT as its soft stop
   (SIGALRM: an ordinary endless loop ends with its line number) and BACKWARD ("" for
   none) as `--backward`. A failure of Torchscope itself becomes a RunError too.
5. The garbage collector is switched off (the script is over; this process ends
   soon), and the RunResult goes to RESULT_FD as `RESULT`, an 8-byte little-endian
   length and `core.protocol.pack(*encode(result))`: a dedicated pipe, not stdout,
   which the script and its threads may write to.
6. `os._exit(0)`: a non-daemon thread left running by the script cannot keep the
   process alive. A copy of this process made by the script's `os.fork()` gets here
   too, and leaves without writing anything.

SCRIPT is an absolute path: it is the script's `__file__` and the filename of its
frames; the parent prints errors with the name the user typed.
"""
from __future__ import annotations

import faulthandler
import gc
import io
import os
import struct
import sys
import tokenize
import traceback

# Bound now, before the script runs: a script that replaces os.write or os._exit
# cannot stop the answer or the exit.
_write, _exit, _getpid = os.write, os._exit, os.getpid
_gc_disable = gc.disable

STARTED = b"S"  # the script is about to run
RESULT = b"R"  # followed by LENGTH and the packed RunResult
LENGTH = struct.Struct("<Q")


def read_script(path: str) -> str:
    """The script's text: UTF-8 (a BOM or a PEP 263 coding line are honoured, as
    Python does). Raises OSError or UnicodeDecodeError (which names the byte)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError:  # first lines not UTF-8, or an unknown coding: let UTF-8 say where
        encoding = "utf-8"
    return raw.decode(encoding)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def export_runner(runner_class):
    """The Runner of every headless export, here and in an attached kernel
    (`--existing FILE --export`, core.kernel.serve): one configuration, one JSON. The
    class is passed in: this module imports it only inside `main`, in a set order."""
    runner = runner_class(grad_limit=None, node_stats=True)
    runner.data_batches = True  # "data": each DataLoader with its preview batch (--batch NAME)
    return runner


def main(argv: list[str]) -> None:
    result_fd, fault_fd, timeout, backward, path = int(argv[0]), int(argv[1]), float(argv[2]), \
        argv[3], argv[4]
    pid = _getpid()
    faulthandler.enable(file=fault_fd, all_threads=False)
    from ..model.run import KernelInfo, RunError, RunResult
    from ..protocol import encode, pack

    def failed(exc: BaseException, what: str) -> RunResult:
        text = str(exc).strip().splitlines()
        message = what + (f": {text[0]}" if text else "")
        return RunResult(graph=None, error=RunError(type(exc).__name__, message, None, "internal",
                                                    traceback.format_exc()))

    started, what = False, "Torchscope failed on this script"
    try:
        from .runner import Runner  # torch, before the script's folder goes on sys.path
        import torch

        this_process = KernelInfo.of_this_process(torch.__version__)  # the export's "kernel"

        what = "cannot read the script"
        code = read_script(path)
        what = "Torchscope failed on this script"
        folder = os.path.dirname(path)
        os.chdir(folder)
        sys.path.insert(0, folder)
        sys.argv = [path]
        _write(result_fd, STARTED)
        started = True
        runner = export_runner(Runner)
        result = runner.run(code, filename=path, timeout=timeout,
                            backward=backward or None, values=False)
        result.kernel = this_process
        if len(argv) > 5 and result.error is None:  # --tensor NAME: that tensor as the view draws it
            from ..model.tensor_view import TensorViewRequest
            from .tensor_view import Viewer

            result.tensor_view = Viewer(runner).view(TensorViewRequest("", argv[5]))
    except BaseException as exc:  # noqa: BLE001 - Torchscope's own failure, reported
        result = failed(exc, what)
    if _getpid() != pid:  # a fork made by the script: only the original answers
        _exit(0)
    # The script is over and this process ends right after the answer: no garbage
    # collector passes over a big graph's objects while it is encoded and packed.
    _gc_disable()
    try:
        blob = pack(*encode(result))
    except BaseException as exc:  # noqa: BLE001
        blob = pack(*encode(failed(exc, "Torchscope could not send this script's graph")))
    try:
        _write_all(result_fd, (b"" if started else STARTED) + RESULT + LENGTH.pack(len(blob)) + blob)
    except OSError:
        _exit(1)
    _exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
