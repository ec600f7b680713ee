"""Torchscope: open the app, or export a script's autograd graph without a window.

    python main.py
    python main.py --export OUT.{json,dot,svg,png} SCRIPT.py [--backward NAME] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXPORT_SUFFIXES = (".json", ".dot", ".svg", ".png")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="torchscope", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", nargs=2, metavar=("OUT", "SCRIPT"),
                        help="run SCRIPT without a window and write its graph to OUT")
    parser.add_argument("--backward", metavar="NAME",
                        help="call NAME.backward() after the script (ones as gradient if not scalar)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="stop the script after this many seconds (default 60)")
    parser.add_argument("file", nargs="?", help="a .py script to open in the app")
    args = parser.parse_args(argv)
    if args.export and not args.export[0].endswith(EXPORT_SUFFIXES):
        parser.error(f"OUT must end in one of {', '.join(EXPORT_SUFFIXES)}")
    return args


def export(out: str, script: str, backward: str | None, timeout: float) -> int:
    """Exit 0 and write OUT; on an error in SCRIPT exit 1 (2 for --backward) and
    print one `SCRIPT:LINE: Type: message` line, writing nothing."""
    try:
        code = Path(script).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{script}: cannot read the script: {exc}", file=sys.stderr)
        return 1
    from core.kernel.runner import Runner

    snap = Runner(grad_limit=None).run(code, filename=script, timeout=timeout, backward=backward,
                                       values=False)
    if snap.error is not None:
        print(snap.error.one_line(script), file=sys.stderr)
        return 2 if snap.error.phase == "backward" else 1
    try:
        if out.endswith((".json", ".dot")):
            from core.export import to_dot, to_json

            text = to_json(snap.graph, snap.backward) if out.endswith(".json") else to_dot(snap.graph)
            Path(out).write_text(text, encoding="utf-8")
        else:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from PySide6 import QtWidgets

            from gui.panels.graph import render_graph

            app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
            render_graph(snap.graph.without_saved(), out)
    except OSError as exc:
        print(f"{out}: cannot write: {exc}", file=sys.stderr)
        return 1
    return 0


def open_app(file: str | None) -> int:
    from PySide6 import QtGui, QtWidgets

    from gui.main_window import MainWindow

    app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Torchscope")
    app.setOrganizationName("Torchscope")
    icon = Path(__file__).parent / "resources" / "icons" / "torchscope.svg"
    if icon.exists():
        app.setWindowIcon(QtGui.QIcon(str(icon)))
    window = MainWindow()
    if file:
        window.open_file(Path(file))
    window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.export:
        out, script = args.export
        return export(out, script, args.backward, args.timeout)
    return open_app(args.file)


if __name__ == "__main__":
    sys.exit(main())
