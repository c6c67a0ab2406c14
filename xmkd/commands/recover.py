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

Nothing it cannot read is deleted: a damaged chunk is skipped (the readable chunks after it are
kept) and moved, with any other unusable file, to <session>/damaged/<clip>/; the summary names
each. Exit status 1 when a partial clip could not be recovered at all (it stays in partial/).
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

    report = recover_session(args.session, FlowConfig(preset=args.flow_preset))
    print(f"{len(report.clips)} clip(s) recovered in {args.session}")
    if report.set_aside:
        print(f"{len(report.set_aside)} unreadable file(s) moved to {args.session}/damaged/ "
              "(nothing was deleted):")  # fmt: skip
        for line in report.set_aside:
            print(f"  {line}")
    for line in report.left:
        print(line)
    return 1 if report.left else 0
