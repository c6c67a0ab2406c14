"""``xmkd recover``: turn an interrupted recording's partial clips into valid clips."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A

DESCRIPTION = """\
After a crash, power loss or kill of `xmkd record`, the frames recorded so far are in
<session>/partial/ as half-second chunks. This turns every partial clip into a normal clip of the
session (video, .skeleton, timestamps, flow computed from the recorded frames when the live flow
was incomplete) and lists it in session.json, marked "recovered". At most the last second
before the interruption is lost.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recover",
        help="turn an interrupted recording's partial clips into valid clips",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("session", type=A.existing_dir, help="the session folder (recordings/<session>)")
    p.add_argument(
        "--flow-preset",
        choices=("ultrafast", "fast", "medium"),
        default="fast",
        help="DIS preset for flow computed during recovery (default fast)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capture.flow import FlowConfig
    from capture.recover import recover_session

    entries = recover_session(args.session, FlowConfig(preset=args.flow_preset))
    print(f"{len(entries)} clip(s) recovered in {args.session}")
    return 0
