"""``xmkd flow``: compute optical flow offline for a session's clips."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A

DESCRIPTION = """\
Compute optical flow for every clip of a session that has a video and no complete flow yet, as
the TSN flow teacher reads it: flow/<clip>/flow_x_%05d.jpg and flow_y_%05d.jpg (pair i = frame i
to i+1), values clipped to +-20 and mapped to 0..255, at the TSN resolution (short side 256).
Methods: OpenCV DIS (presets ultrafast / fast / medium; default fast) or TV-L1 (needs
opencv-contrib-python; the TSN paper's method, about 1 frame/s on a CPU).
"""


#: below 16 pixels DIS has no pyramid to work on (capture.flow.FlowConfig)
SHORT_SIDE = A.int_range(16, 4096, "pixels of the flow's shorter side")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "flow",
        help="compute optical flow for a session's clips (DIS or TV-L1)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("session", type=A.existing_dir, help="the session folder")
    p.add_argument("--method", choices=("dis", "tvl1"), default="dis")
    p.add_argument("--preset", choices=("ultrafast", "fast", "medium"), default="fast")
    p.add_argument(
        "--short-side", type=SHORT_SIDE, default=256, help="flow resolution (default 256)"
    )
    p.add_argument("--overwrite", action="store_true", help="recompute existing flow too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capture.flow import FlowConfig, session_flow

    config = FlowConfig(method=args.method, preset=args.preset, short_side=args.short_side)
    done = session_flow(args.session, config, overwrite=args.overwrite)
    print(f"flow written for {len(done)} clip(s) of {args.session}")
    return 0
