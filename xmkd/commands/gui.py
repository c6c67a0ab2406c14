"""``xmkd gui``: the desktop app (record, distill, live, replay); needs the ``gui`` extra."""

from __future__ import annotations

import argparse

TABS = ("record", "distill", "live", "replay")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gui",
        help="the desktop app: record, distill, live recognition, replay",
        description=(
            'Open the xmkd desktop app (PySide6 + pyqtgraph; pip install "xmkd[gui]"). '
            "Tabs: Record (capture sessions from an Azure Kinect, an MKV file, NTU replay or the "
            "synthetic source), Distill (run and follow `xmkd distill`, then export), Live "
            "(streaming classification with top-5 bars and a label timeline) and Replay (NTU "
            ".skeleton files with their video, prediction beside ground truth, folder "
            "evaluation). Settings and window layout persist between runs."
        ),
    )
    p.add_argument(
        "--settings",
        metavar="FILE",
        help="keep settings in this INI file instead of the user's settings store "
        "(also $XMKD_GUI_SETTINGS)",
    )
    p.add_argument("--tab", choices=TABS, help="tab to show first (default: the last one used)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xmkd.errors import require

    require("PySide6.QtWidgets", "gui", "the desktop app (xmkd gui)")
    require("pyqtgraph", "gui", "the desktop app (xmkd gui)")
    from gui.app import main

    return main(settings_path=args.settings, tab=args.tab)
