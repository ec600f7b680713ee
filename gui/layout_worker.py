"""Lays out graphs off the GUI thread, so the window never freezes on a big graph or
while Graphviz runs. A newer request cancels the one under way (the layout checks
between sweeps; `dot` is killed)."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from PySide6 import QtCore

from core.layout import LayoutCancelled


class LayoutWorker(QtCore.QObject):
    finished = QtCore.Signal(int, object)  # request number, Layout
    failed = QtCore.Signal(int, str)  # request number, why
    _done = QtCore.Signal(int, object)  # from the worker thread: request number, its Future

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layout")
        self.request = 0
        # Results cross back to the GUI thread through a queued connection.
        self._done.connect(self._on_done, QtCore.Qt.QueuedConnection)

    def submit(self, job: Callable[[Callable[[], bool]], object]) -> int:
        """Run `job(cancelled)` in the worker; returns its number. Earlier requests
        are cancelled."""
        self.request += 1
        number = self.request
        future = self.pool.submit(job, lambda: self.request != number)
        future.add_done_callback(lambda f: self._done.emit(number, f))
        return number

    def cancel(self) -> None:
        self.request += 1

    def _on_done(self, number: int, future: Future) -> None:
        if number != self.request:
            return
        try:
            self.finished.emit(number, future.result())
        except LayoutCancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - dot missing, timed out, crashed
            self.failed.emit(number, f"{type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        self.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
