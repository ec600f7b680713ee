import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh settings folder, so tests never read or clobber the user's."""
    monkeypatch.setenv("TORCHSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def window(qtbot, home):
    """The whole app with a real kernel, ready to run code."""
    from gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.session.ready, timeout=60_000):
        pass
    yield win
    win.session.shutdown()
