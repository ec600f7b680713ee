"""A kernel elsewhere: attach to a Jupyter kernel that is already running.

A notebook's kernel, or one on a GPU server reached through an SSH tunnel, is found
by its connection file, as `jupyter console --existing FILE` finds it: the ports,
the transport and the signing key of its channels. Nothing here starts or stops a
process: the kernel belongs to whoever started it, so the app never kills it or
restarts it; detaching closes our Comm and our sockets, nothing more.

Torchscope's kernel side may not be installed where the kernel runs, and if it were,
it could be another version. So the window *sends* it: `bootstrap_code()` is one
execute request that carries the text of every `.py` file under core/ (a dict of
strings, never a pickle) and a small import hook that serves them to `import` under
the private name `_torchscope_core`, then calls `serve()`, which opens the Comm and
says `Hello`. The kernel always runs the window's own version of core/, so the two
ends speak the same protocol; what can still differ (a Python too old, no torch, a
`Hello` of another protocol) is reported as a sentence, never a crash.

`HeadlessKernel` is the window-less client of `torchscope --existing FILE --export`:
jupyter_client's blocking client, the same bootstrap, the same protocol.
"""
from __future__ import annotations

import json
import os
import queue
import time
from pathlib import Path

from .model.run import KernelInfo, RunError, RunResult
from .protocol import ExportRequest, Hello, ProtocolError, decode, encode

CORE_DIR = Path(__file__).resolve().parent
PRIVATE_NAME = "_torchscope_core"
CONNECTION_KEYS = ("shell_port", "iopub_port", "control_port", "hb_port", "key")
CONNECT_TIMEOUT = 30.0  # s for an attached kernel to answer at all
BOOTSTRAP_TIMEOUT = 120.0  # s to receive core/, import torch and say Hello
GRACE = 5.0  # s after an interrupt for the script to stop and the graph to come back

# Runs in the kernel. `sources` maps a path under core/ ("kernel/serve.py") to its text.
# Every module gets a `__file__` under "/<name>/" so that Torchscope's own frames are
# recognised (and left out of the user's tracebacks) as they are for core/ on disk,
# and `get_source` lets tracebacks quote their lines.
SENT_BOOTSTRAP = '''
def _torchscope_boot(sources, name):
    import importlib, importlib.abc, importlib.util, sys
    if sys.version_info < (3, 11):
        raise RuntimeError("Torchscope's kernel side needs Python 3.11 or newer; this kernel runs "
                           "Python " + sys.version.split()[0])

    class SentSources(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
        torchscope_name = name

        def _file(self, fullname):
            if fullname != name and not fullname.startswith(name + "."):
                return None
            rel = fullname[len(name) + 1:].replace(".", "/")
            for file in ((rel + "/" if rel else "") + "__init__.py", rel + ".py"):
                if file in sources:
                    return file
            return None

        def find_spec(self, fullname, path=None, target=None):
            file = self._file(fullname)
            if file is None:
                return None
            spec = importlib.util.spec_from_loader(fullname, self, origin="/" + name + "/" + file,
                                                   is_package=file.endswith("__init__.py"))
            spec.has_location = True
            return spec

        def is_package(self, fullname):
            return self._file(fullname).endswith("__init__.py")

        def get_source(self, fullname):
            return sources[self._file(fullname)]

        def get_code(self, fullname):
            file = self._file(fullname)
            return compile(sources[file], "/" + name + "/" + file, "exec", dont_inherit=True)

    # Attached again (or by another window): this window's core/ replaces the last one.
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "torchscope_name", None) != name]
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    sys.meta_path.insert(0, SentSources())
    return importlib.import_module(name + ".kernel.serve").serve()
'''


class AttachError(Exception):
    """Attaching failed; the message is one sentence for the user."""


class NoAnswer(AttachError):
    """A request was interrupted after its time and still not answered GRACE s later."""


def find_connection_file(name: str) -> str:
    """The connection file's path: `name` itself, or (as `jupyter console --existing`
    takes it) a file of that name or id in Jupyter's runtime folder. AttachError when
    there is none."""
    if os.path.isfile(name):
        return os.path.abspath(name)
    from jupyter_client import find_connection_file as find

    try:
        return find(name)
    except OSError:
        raise AttachError(f"{name}: no such connection file (a kernel's connection file is "
                          "the kernel-*.json it was started with, see `jupyter --runtime-dir`)") from None


def read_connection_file(name: str) -> tuple[str, dict]:
    """(its path, its contents), checked: JSON, an object, with the ports and the key.
    AttachError with a sentence otherwise."""
    path = find_connection_file(name)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except OSError as exc:
        raise AttachError(f"{path}: cannot read the connection file: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttachError(f"{path}: not a kernel connection file (not JSON: {exc})") from None
    if not isinstance(info, dict):
        raise AttachError(f"{path}: not a kernel connection file (not a JSON object)")
    missing = [k for k in CONNECTION_KEYS if k not in info]
    if missing:
        raise AttachError(f"{path}: not a kernel connection file (no {', '.join(missing)})")
    return path, info


def describe(path: str, info: dict) -> str:
    """Where the kernel is, in words: its file and address."""
    return f"{Path(path).name} at {info.get('ip', '127.0.0.1')}:{info['shell_port']}"


def kernel_sources(core_dir: Path = CORE_DIR) -> dict[str, str]:
    """Every .py file under core/, by its path relative to core/ ("kernel/serve.py")."""
    return {p.relative_to(core_dir).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(core_dir.rglob("*.py")) if "__pycache__" not in p.parts}


def bootstrap_code(sources: dict[str, str] | None = None, name: str = PRIVATE_NAME) -> str:
    """One execute request that loads core/ (sent as text) into the kernel under `name`
    and opens the Comm; the Comm's opening carries `Hello`."""
    return (SENT_BOOTSTRAP + f"_torchscope_endpoint = _torchscope_boot({sources or kernel_sources()!r}, "
            f"{name!r})\ndel _torchscope_boot\n")


def kernel_info(hello: Hello) -> KernelInfo:
    return KernelInfo(hello.pid, hello.hostname, hello.python, hello.torch)


def bootstrap_failure(error: str) -> str:
    """Why the kernel side did not load, with what to do about it."""
    if "No module named 'torch'" in error:
        return ("the kernel has no torch (ModuleNotFoundError: No module named 'torch'); install "
                "torch in the kernel's Python environment and connect again")
    if "speaks protocol" in error:
        return (f"a version mismatch between this window and Torchscope's kernel side ({error}); "
                "use the same Torchscope on both sides")
    if "No module named 'numpy'" in error:
        return "the kernel has no numpy; install numpy in the kernel's Python environment and connect again"
    return f"the kernel could not load Torchscope's kernel side: {error}"


class HeadlessKernel:
    """A kernel attached without a window (jupyter_client's blocking client): the
    bootstrap, requests answered over the Comm, interrupt, and detach. Never a kill."""

    def __init__(self, connection_file: str, connect_timeout: float = CONNECT_TIMEOUT):
        from jupyter_client import BlockingKernelClient

        self.path, info = read_connection_file(connection_file)
        self.where = describe(self.path, info)
        self.client = BlockingKernelClient()
        self.client.load_connection_info(info)
        self.client.start_channels()
        self.hello: Hello | None = None
        self.comm_id: str | None = None
        # wait_for_ready gives up ("died") at the first missed heartbeat, which a kernel
        # that is still starting misses: asked again until our own deadline.
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.client.wait_for_ready(timeout=max(0.1, deadline - time.monotonic()))
                break
            except RuntimeError:
                if time.monotonic() >= deadline:
                    self.detach()
                    raise AttachError(f"{self.where}: the kernel did not answer within {connect_timeout:g} s "
                                      "(is it running? is the SSH tunnel to it open?)") from None
                time.sleep(0.2)

    def bootstrap(self, timeout: float = BOOTSTRAP_TIMEOUT) -> Hello:
        """Send core/ and open the Comm; the kernel's Hello. AttachError with the
        reason (no torch, another protocol, no answer) otherwise."""
        msg_id = self.client.execute(bootstrap_code(), silent=True, store_history=False)
        error = ""
        for msg in self._messages(msg_id, timeout, "load Torchscope's kernel side"):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                error = f"{content.get('ename', '')}: {content.get('evalue', '')}"
            elif kind == "comm_open" and content.get("target_name") == "torchscope":
                try:
                    hello, _ = decode(content.get("data", {}), [])
                except ProtocolError as exc:
                    error = str(exc)
                    continue
                if isinstance(hello, Hello):
                    self.hello, self.comm_id = hello, content.get("comm_id")
        if self.comm_id is None:
            raise AttachError(f"{self.where}: {bootstrap_failure(error or 'it did not open the Comm')}")
        return self.hello

    def request(self, message, timeout: float | None = None):
        """Send one request over the Comm and return its reply (pushed output is
        skipped). After `timeout` s the request is interrupted; if the kernel has
        not answered GRACE s later, AttachError."""
        data, buffers = encode(message)
        msg = self.client.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        msg["buffers"] = buffers
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        reply, interrupted_at = None, None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.05, deadline - time.monotonic())
            try:
                got = self.client.get_iopub_msg(timeout=min(wait, 1.0))
            except queue.Empty:
                got = None
            if got is not None and got.get("parent_header", {}).get("msg_id") == msg_id:
                kind, content = got["msg_type"], got["content"]
                if kind == "comm_msg" and content.get("comm_id") == self.comm_id:
                    try:
                        answer, reply_to = decode(content.get("data", {}), got.get("buffers") or [])
                    except ProtocolError as exc:
                        raise AttachError(f"{self.where}: could not read the kernel's answer: {exc}") from None
                    if reply_to == msg_id and type(answer).__name__ != "OutputChunk":
                        reply = answer
                elif kind == "status" and content.get("execution_state") == "idle":
                    return reply, interrupted_at is not None
            if deadline is not None and time.monotonic() >= deadline:
                if interrupted_at is not None:
                    raise NoAnswer(f"it was interrupted, but the kernel had not answered {GRACE:g} s "
                                   "later; the kernel is left running (Torchscope never stops a kernel "
                                   "it did not start)")
                self.interrupt()
                interrupted_at, deadline = time.monotonic(), time.monotonic() + GRACE

    def interrupt(self) -> None:
        """`interrupt_request` on the control channel, as jupyter_client does for a
        kernel whose interrupt mode is "message": it works for a kernel on another
        machine (through the same tunnel), where no signal can be sent, and ipykernel
        answers it from its control thread while the shell is busy, by SIGINT to
        itself. (See gui.session.AttachedKernel.interrupt.)"""
        self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    def detach(self) -> None:
        """Close our Comm (the kernel forgets our endpoint) and our sockets. The kernel
        process is not touched."""
        if self.comm_id is not None:
            self.client.shell_channel.send(self.client.session.msg(
                "comm_close", {"comm_id": self.comm_id, "data": {}}))
            self.comm_id = None
            time.sleep(0.05)  # let the close leave before the socket does
        self.client.stop_channels()

    def _messages(self, msg_id: str, timeout: float, what: str):
        """The iopub messages answering `msg_id`, until its `idle`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AttachError(f"{self.where}: the kernel did not {what} within {timeout:g} s "
                                  "(it may be busy running something else)")
            try:
                msg = self.client.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                return
            yield msg


def export_in_kernel(connection_file: str, script: str, code: str, backward: str | None,
                     timeout: float) -> RunResult:
    """`torchscope --existing FILE --export OUT SCRIPT`: run SCRIPT's text in the
    attached kernel as the headless export runs it, and return its RunResult (the
    graph comes back over the Comm; OUT is written here). The script runs in its
    folder if the kernel sees that folder (a kernel on this machine), else in the
    kernel's own. After `timeout` s it is interrupted ("timed out", as the local
    export says). AttachError when the kernel cannot be reached or used."""
    kernel = HeadlessKernel(connection_file)
    try:
        hello = kernel.bootstrap()
        path = os.path.abspath(script)
        reply, interrupted = kernel.request(
            ExportRequest(code, path, os.path.dirname(path), backward or None), timeout)
    except NoAnswer as exc:
        return RunResult(None, error=RunError("ScriptTimeout", f"the script timed out after {timeout:g} s; {exc}",
                                              None))
    finally:
        kernel.detach()
    if reply is None:
        raise AttachError(f"{kernel.where}: the kernel answered the export with nothing"
                          + (" (it was interrupted outside the script)" if interrupted else ""))
    if not isinstance(reply, RunResult):
        message = getattr(reply, "message", type(reply).__name__)
        raise AttachError(f"{kernel.where}: Torchscope's kernel side failed: {message}")
    if interrupted and reply.error is not None and reply.error.type == "KeyboardInterrupt":
        reply.error = RunError("ScriptTimeout", f"the script timed out after {timeout:g} s and was stopped",
                               reply.error.line)
    if reply.kernel is None:
        reply.kernel = kernel_info(hello)
    return reply
