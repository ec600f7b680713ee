"""Torchscope: open the app, or export a script's autograd graph without a window.

    torchscope [SCRIPT.py] [--existing CONNECTION_FILE]
    torchscope --export OUT.{json,dot,svg,png} SCRIPT.py [--backward NAME] [--timeout S]
                                                         [--collapse DEPTH]

The headless export, step by step (`export`):

1. The parent (this process, which never imports torch) checks that SCRIPT can be
   read, then `run_child` starts `python -m core.kernel.export_child` in a session of
   its own (`start_new_session`: one process group holds the child and anything the
   script forks) and waits for its RunResult on a dedicated pipe (see that module).
2. The parent gives the child START_LIMIT s to import torch and start the script,
   then `--timeout` + GRACE s to run it and send the graph back. The child stops the
   script itself after `--timeout` (SIGALRM, with the script's line number); when that
   does not work (`except BaseException`, an ignored SIGALRM, a long native op) the
   parent kills the whole process group: "the script timed out after N s".
3. Once the answer is in (or the child died, or time ran out) the process group is
   killed: nothing the script started outlives the export, or can touch OUT.
4. The parent alone writes OUT (`write_atomically`): a temporary file beside it, then
   `os.replace`, so OUT is whole or not there at all.

Exit 0: OUT written, nothing on stderr. Exit 1: one line on stderr, OUT untouched:
`SCRIPT:LINE: Type: message` (an error in the script), `SCRIPT[:LINE]: the script timed
out after N s and was stopped`, `SCRIPT[:LINE]: the script ended the Python process
(exit N | signal N, name)`, `SCRIPT: cannot read the script: reason`, or
`OUT: cannot write: reason`. Exit 2: one line, a bad `--backward NAME` or bad options.

With `--existing CONNECTION_FILE` (a running Jupyter kernel's, as `jupyter console
--existing` takes it) the app attaches to that kernel instead of starting its own, and
`--export` runs SCRIPT there (`core.attach.export_in_kernel`): the graph comes back over
the Comm and OUT is written here. That kernel is never stopped; `CONNECTION_FILE: reason`
when it cannot be reached or used.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXPORT_SUFFIXES = (".json", ".dot", ".svg", ".png")
DEVICES_FORMAT = "torchscope.devices/1"
START_LIMIT = 60.0  # s for the child to start Python, import torch and read the script
GRACE = 5.0  # s after --timeout: the child's own stop lands, the graph is traced and sent
UNTYPED = ("ScriptTimeout", "ProcessEnded")  # errors whose line has no `Type:`
EPILOG = """examples:
  torchscope                                       open the app
  torchscope model.py                              open the app with model.py
  torchscope --export graph.json model.py          the graph as JSON (torchscope.graph/1)
  torchscope --export graph.svg model.py --backward loss
  torchscope --timeout 10 --export graph.png model.py
  torchscope --export graph.svg model.py --collapse 2   modules 2 deep as boxes
  torchscope --existing kernel-1234.json           attach the app to a running kernel
  torchscope --existing kernel-1234.json --export graph.json model.py
  torchscope --devices [--json]                    CPU, RAM and GPUs, like nvidia-smi

--export runs SCRIPT in a child Python process, in SCRIPT's folder. Exit 0: OUT
written. Exit 1: an error in SCRIPT, a timeout, a crash, or OUT could not be
written; one line on stderr, OUT untouched. Exit 2: a bad --backward NAME or option."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every other failure
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="torchscope", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", nargs="?", metavar="SCRIPT",
                        help="a .py script: the one to export, or to open in the app")
    parser.add_argument("--export", metavar="OUT",
                        help="run SCRIPT without a window and write its graph to OUT "
                             f"({', '.join(EXPORT_SUFFIXES)})")
    parser.add_argument("--backward", metavar="NAME",
                        help="call NAME.backward() after the script (ones as gradient if not scalar)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="stop the script after this many seconds (default 60)")
    parser.add_argument("--existing", metavar="CONNECTION_FILE",
                        help="attach to a running Jupyter kernel (its connection file) instead of "
                             "starting one; with --export, the script runs there")
    parser.add_argument("--collapse", type=int, metavar="DEPTH",
                        help="--export: draw modules DEPTH deep and deeper as one box each "
                             "(1: the top-level models)")
    parser.add_argument("--batch", metavar="NAME",
                        help="--export OUT.png: draw DataLoader NAME's preview batch (the data panel's "
                             "grid, labels under the tiles) instead of the graph")
    parser.add_argument("--tensor", metavar="NAME",
                        help="--export OUT.png: draw tensor NAME as the tensor view does (a heatmap, "
                             "images or a grid, a plot) instead of the graph")
    parser.add_argument("--devices", action="store_true",
                        help="print this machine's CPU, RAM and GPUs (or why there is none), like nvidia-smi")
    parser.add_argument("--json", action="store_true",
                        help=f"--devices: one sample as JSON ({DEVICES_FORMAT})")
    args = parser.parse_args(argv)
    if args.json and not args.devices:
        parser.error("--json needs --devices")
    if args.export is not None:
        if not args.export.endswith(EXPORT_SUFFIXES):
            parser.error(f"OUT must end in one of {', '.join(EXPORT_SUFFIXES)}")
        if not args.script:
            parser.error("--export OUT needs a SCRIPT")
        if not (math.isfinite(args.timeout) and args.timeout > 0):
            parser.error("--timeout must be a positive number of seconds")
        if args.collapse is not None and args.collapse < 1:
            parser.error("--collapse DEPTH must be 1 or more")
    elif args.collapse is not None:
        parser.error("--collapse DEPTH needs --export OUT")
    if args.batch is not None and not (args.export or "").endswith(".png"):
        parser.error("--batch NAME needs --export OUT.png")
    if args.tensor is not None and not (args.export or "").endswith(".png"):
        parser.error("--tensor NAME needs --export OUT.png")
    return args


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def error_line(error, script: str) -> str:
    where = f"{script}:{error.line}" if error.line else script
    text = error.message if error.type in UNTYPED else f"{error.type}: {error.message}"
    return f"{where}: {text}".replace("\n", " ")


def _process_ended(returncode: int, fault_text: str, path: str, started: bool):
    """The RunError for a child that died without answering."""
    from core.model.run import RunError

    if returncode < 0:
        n = -returncode
        name = signal.strsignal(n) or (signal.Signals(n).name if n in signal.valid_signals()
                                       else "unknown")
        how = f"signal {n}, {name[:1].lower()}{name[1:]}"
        if n == signal.SIGKILL:
            how += "; the system may have run out of memory"
    else:
        how = f"exit {returncode}"
    # faulthandler's dump, most recent call first: the first frame in the script
    match = re.search(rf'File "{re.escape(path)}", line (\d+)', fault_text)
    what = "the script ended the Python process" if started else \
        "the export's Python process ended before the script ran"
    return RunError("ProcessEnded", f"{what} ({how})", int(match.group(1)) if match else None)


def run_child(script: str, backward: str | None, timeout: float, tensor: str | None = None):
    """Run SCRIPT in a watched child process (`core.kernel.export_child`) and return
    its RunResult; a timeout, a dead child or a garbled answer become its RunError.
    The child's whole process group is dead when this returns."""
    from core.kernel.export_child import LENGTH, RESULT, STARTED
    from core.model.run import RunError, RunResult
    from core.protocol import ProtocolError, decode, unpack

    path = os.path.abspath(script)
    read_fd, write_fd = os.pipe()
    fault = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.kernel.export_child", str(write_fd), str(fault.fileno()),
             repr(timeout), backward or "", path, *([tensor] if tensor else [])],
            cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_fd, fault.fileno()), start_new_session=True)
    except BaseException:
        os.close(read_fd)
        fault.close()
        raise
    finally:
        os.close(write_fd)
    buf, started, eof = bytearray(), False, False
    deadline = time.monotonic() + START_LIMIT
    try:
        while True:
            if not started and buf[:1] == STARTED:
                started, deadline = True, time.monotonic() + timeout + GRACE
                del buf[:1]
            if buf and (not started or buf[:1] != RESULT):
                raise ProtocolError(f"unexpected bytes {bytes(buf[:8])!r} on the result pipe")
            if len(buf) >= 1 + LENGTH.size:
                (n,) = LENGTH.unpack_from(buf, 1)
                if len(buf) >= 1 + LENGTH.size + n:
                    break
            exited = proc.poll() is not None
            left = deadline - time.monotonic()
            if left <= 0 and not exited:
                message = (f"the script timed out after {timeout:g} s and was stopped" if started
                           else f"the export's Python process did not start within {START_LIMIT:g} s")
                return RunResult(graph=None, error=RunError("ScriptTimeout", message, None))
            # A short wait, then look at the child again: a process the script forked may
            # hold the pipe open after the child died, so EOF alone cannot be waited for.
            wait = 0.0 if exited else min(left, 0.1)
            if not eof and left > 0 and select.select([read_fd], [], [], wait)[0]:
                chunk = os.read(read_fd, 1 << 20)
                buf += chunk
                eof = not chunk
                continue
            if exited:
                fault.seek(0)
                text = fault.read(1 << 20).decode("ascii", "replace")
                return RunResult(graph=None, error=_process_ended(proc.returncode, text, path, started))
            if eof:
                time.sleep(wait)
        data, buffers = unpack(bytes(buf[1 + LENGTH.size:1 + LENGTH.size + n]))
        result, _ = decode(data, buffers)
        if not isinstance(result, RunResult):
            raise ProtocolError(f"a {type(result).__name__} instead of a RunResult")
        return result
    except ProtocolError as exc:
        return RunResult(graph=None, error=RunError(
            "ProtocolError", f"Torchscope could not read the export's answer: {exc}", None, "internal"))
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(read_fd)
        fault.close()


def write_atomically(out: str, data: bytes) -> None:
    """Write OUT whole or not at all: a temporary file with a unique name beside OUT,
    then `os.replace`. On any failure the temporary file is removed and the OSError
    raised; OUT is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)),
                               prefix=f".{os.path.basename(out)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is 0600; OUT gets the usual mode
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def quiet_stderr():
    """fd 2 on /dev/null: what Qt and fontconfig print bypasses Python."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def render(result, out: str, collapse: int | None = None, script_backward: bool = False,
           batch: str | None = None) -> bytes:
    """OUT's bytes, by its suffix: JSON, DOT and SVG written by `core.export`, PNG
    drawn by the graph panel's scene. `collapse`: modules that deep as boxes;
    `script_backward`: `result.backward` is the script's own call (no --backward)."""
    if out.endswith((".json", ".dot", ".svg")):
        from core.export import to_dot, to_json, to_svg

        if out.endswith(".json"):
            text = to_json(result.graph, result.backward, collapse=collapse,
                           script_backward=script_backward, kernel=result.kernel, datasets=result.data,
                           parallel=result.parallel)
        elif out.endswith(".dot"):
            text = to_dot(result.graph, collapse)
        else:
            text = to_svg(result.graph.without_saved(), result.backward, collapse)
        return text.encode("utf-8")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with quiet_stderr():
        from PySide6 import QtCore, QtWidgets

        QtCore.qInstallMessageHandler(lambda *_: None)  # one line on stderr, not Qt's warnings
        from gui.graph_scene import render_graph

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
        if getattr(result, "tensor_view", None) is not None:
            from gui.panels.tensor_view import render_png

            return render_png(result.tensor_view)
        if batch is not None:
            from gui.panels.data import render_batch

            return render_batch(next(i.batch for i in result.data if i.name == batch))
        return render_graph(result.graph.without_saved(), out.rsplit(".", 1)[1],
                            trace=result.backward, collapse=collapse)


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def export(out: str, script: str, backward: str | None, timeout: float,
           collapse: int | None = None, existing: str | None = None, batch: str | None = None,
           tensor: str | None = None) -> int:
    """Exit 0 and write OUT; otherwise one line on stderr, exit 1 (2 for --backward),
    and OUT untouched. The flow is in this module's docstring."""
    # Decoding, laying out and writing one graph of 10,000s of objects: a fifth faster
    # without the cyclic garbage collector passing over them again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _export(out, script, backward, timeout, collapse, existing, batch, tensor)
    finally:
        if enabled:
            gc.enable()


def _export(out: str, script: str, backward: str | None, timeout: float, collapse: int | None,
            existing: str | None = None, batch: str | None = None, tensor: str | None = None) -> int:
    from core.kernel.export_child import read_script

    try:
        code = read_script(script)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{script}: cannot read the script: {reason(exc)}", file=sys.stderr)
        return 1
    previous = signal.signal(signal.SIGTERM, _interrupted)  # so the child's group dies too
    try:
        if existing is not None:
            from core.attach import AttachError, export_in_kernel

            try:
                result = export_in_kernel(existing, script, code, backward, timeout)
            except AttachError as exc:
                print(exc, file=sys.stderr)
                return 1
        else:
            result = run_child(script, backward, timeout, tensor=tensor)
    except KeyboardInterrupt:
        print(f"{script}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result.error is not None:
        print(error_line(result.error, script), file=sys.stderr)
        return 2 if result.error.phase == "backward" else 1
    if batch is not None and not any(i.name == batch and i.batch is not None for i in result.data):
        print(f"{script}: no DataLoader named {batch!r} (--batch NAME)", file=sys.stderr)
        return 2
    if tensor is not None:
        view = getattr(result, "tensor_view", None)
        if view is None or view.kind == "gone":
            print(f"{script}: no tensor named {tensor!r} (--tensor NAME)"
                  + (" (not available with --existing)" if existing else ""), file=sys.stderr)
            return 2
    try:
        write_atomically(out, render(result, out, collapse, script_backward=backward is None, batch=batch))
    except OSError as exc:
        print(f"{out}: cannot write: {reason(exc)}", file=sys.stderr)
        return 1
    return 0


def open_app(file: str | None, existing: str | None = None) -> int:
    from PySide6 import QtGui, QtWidgets

    from gui.main_window import MainWindow

    app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Torchscope")
    app.setOrganizationName("Torchscope")
    icon = ROOT / "resources" / "icons" / "torchscope.svg"
    if icon.exists():
        app.setWindowIcon(QtGui.QIcon(str(icon)))
    window = MainWindow(existing=existing)
    if file:
        window.open_file(Path(file))
    window.show()
    return app.exec()


def print_devices(as_json: bool, interval: float = 0.5) -> int:
    """`--devices`: the devices as the kernel's sampler reads them, here (torch is
    imported: CUDA is asked, never initialized). Two readings `interval` s apart give
    the CPU's utilization."""
    import json

    from core.kernel.devices import Probe
    from core.model.devices import devices_table, sample_to_dict

    probe = Probe()
    inventory = probe.inventory()
    probe.sample()
    time.sleep(interval)
    sample = probe.sample()
    if as_json:
        print(json.dumps(sample_to_dict(inventory, sample), indent=1))
    else:
        print(devices_table(inventory, sample))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.export is not None:
        return export(args.export, args.script, args.backward, args.timeout, args.collapse,
                      args.existing, args.batch, args.tensor)
    if args.devices:
        return print_devices(args.json)
    return open_app(args.script, args.existing)


if __name__ == "__main__":
    sys.exit(main())
