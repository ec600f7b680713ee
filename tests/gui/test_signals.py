"""PySide6 6.12.0 aborts Python 3.11 after a few thousand Signal.emit() calls
(DESIGN.md, Pins). This test emits far more than that, the way Session does."""
from PySide6 import QtCore

import PySide6


class Emitter(QtCore.QObject):
    fired = QtCore.Signal(object)
    flag = QtCore.Signal(bool)


def test_two_hundred_thousand_emits_survive(qtbot):
    em = Emitter()
    count = [0]

    def on_fire(payload):
        count[0] += 1

    em.fired.connect(on_fire)
    em.flag.connect(on_fire)
    for i in range(100_000):
        em.fired.emit({"run_id": i})
        em.flag.emit(True)
    assert count[0] == 200_000


def test_pyside_is_below_the_broken_release():
    major, minor = (int(p) for p in PySide6.__version__.split(".")[:2])
    assert (6, 8) <= (major, minor) < (6, 12), PySide6.__version__
