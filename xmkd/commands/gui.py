"""``xmkd gui``: the desktop app (record, distill, live, replay); needs the ``gui`` extra."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping

from xmkd.commands import _args as A

TABS = ("record", "distill", "live", "replay")

#: The shared libraries Qt's xcb platform plugin (PySide6 6.5 and newer: libqxcb.so and
#: libQt6XcbQpa.so.6) links against, with the Debian/Ubuntu package of each. Without one of them
#: Qt aborts at start with "Could not load the Qt platform plugin xcb" and names only
#: xcb-cursor, whatever is missing (on a minimal Ubuntu it was libxcb-icccm4 and
#: libxcb-keysyms1), so the app checks them itself first and names the packages.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
}


def _loadable(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname`` (what Qt's plugin loader will ask for)."""
    import ctypes

    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def check_display(
    env: Mapping[str, str] | None = None,
    loadable: Callable[[str], bool] | None = None,
    platform: str | None = None,
) -> None:
    """Raise one sentence when Qt cannot open a window here: no display to show it on, or
    system libraries of Qt's xcb platform plugin missing (naming the packages to install).

    Only Linux with the xcb platform is checked: ``QT_QPA_PLATFORM`` set to another platform
    (offscreen, wayland, vnc) or a Wayland session without it leave the choice to Qt."""
    from xmkd.errors import XmkdError

    env = os.environ if env is None else env
    loadable = loadable or _loadable
    platform = platform or sys.platform
    if not platform.startswith("linux"):
        return
    chosen = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if chosen and chosen != "xcb":
        return
    wayland = bool(env.get("WAYLAND_DISPLAY"))
    if not chosen and wayland:
        return  # Qt tries its Wayland plugin first where a Wayland compositor runs
    if not env.get("DISPLAY") and not wayland:
        raise XmkdError(
            "the desktop app needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set: "
            "run it in a desktop session, over ssh -X, or under xvfb-run "
            "(QT_QPA_PLATFORM=offscreen runs it without showing a window)"
        )
    missing = [soname for soname in XCB_LIBRARIES if not loadable(soname)]
    if missing:
        packages = " ".join(dict.fromkeys(XCB_LIBRARIES[s] for s in missing))
        raise XmkdError(
            f"Qt's xcb platform needs system libraries missing here ({', '.join(missing)}); "
            f"install them with: sudo apt install {packages} (Debian/Ubuntu package names)"
        )


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
        type=A.out_file,
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
    check_display()
    from gui.app import main

    return main(settings_path=args.settings, tab=args.tab)
