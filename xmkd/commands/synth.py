"""``xmkd synth``: generate the synthetic paired data set (the embedded default)."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A

DESCRIPTION = """\
Generate synthetic paired data in the recordings layout: simulated subjects perform parametric
actions seen by NTU-like cameras (C001 front, C002/C003 at +-45 degrees); each clip is an NTU
.skeleton file (sensor noise, inferred joints, lost tracking) plus the RGB video rendered from the
same motion, timestamps and optionally optical flow. Some classes differ only in the object held
in the hand (cup / phone / food), so the skeleton hardly tells them apart while the video does.
Subjects are numbered like NTU-60 so the x-sub rule and the paper's Teacher-Train /
Student-Train split apply unchanged. The same seed gives identical files.

presets:
  tiny     6 classes, 6 subjects (2 per split), 2 views, 1 repetition, 32 frames, 64x64, with
           optical flow: seconds, what the tests use
  default  10 classes, 40 subjects, 3 views, 2 repetitions (2400 clips), 24 frames at 10 fps,
           64x64 RGB, no flow (add --flow)
"""


CLASSES = A.int_range(1, 60, "the synthetic motions cover NTU's 60 daily actions")
REPETITIONS = A.int_range(1, 100, "100 repetitions of 10 classes are 120,000 clips")
#: frames per synthetic clip: SynthConfig needs 8; 1000 frames are 100 s at its 10 fps (NTU
#: clips have at most 300 frames at 30 fps) and a clip is rendered in one worker's memory
FRAMES = A.int_range(8, 1000, "100 s at the synthetic 10 fps")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate synthetic paired (video, skeleton) data",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", choices=("tiny", "default"), default="default")
    p.add_argument(
        "--out",
        type=A.out_dir,
        required=True,
        help="session folder to create (e.g. recordings/synth)",
    )
    p.add_argument("--seed", type=A.seed_int, default=None, help="random seed (default 0)")
    p.add_argument("--classes", type=CLASSES, default=None, help="number of classes, 1..60")
    p.add_argument(
        "--repetitions", type=REPETITIONS, default=None, help="repetitions per subject/view/class"
    )
    p.add_argument("--frames", type=FRAMES, default=None, help="frames per clip")
    flow = p.add_mutually_exclusive_group()
    flow.add_argument("--flow", dest="flow", action="store_true", default=None,
                      help="also write optical flow JPEGs (DIS)")  # fmt: skip
    flow.add_argument("--no-flow", dest="flow", action="store_false", help="write no flow")
    p.add_argument("--workers", type=A.int_range(1, A.MAX_WORKERS), default=None,
                   help="worker processes (default: CPU count, at most 8)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from tqdm import tqdm

    from xmkd.synth import generate, preset

    cfg = preset(
        args.preset,
        seed=args.seed,
        classes=args.classes,
        repetitions=args.repetitions,
        frames=args.frames,
        flow=args.flow,
    )
    workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 8)
    with tqdm(total=cfg.num_clips, unit="clip", desc="synth") as bar:
        summary = generate(cfg, args.out, workers=max(workers, 1), progress=bar.update)
    print(f"session   {summary.session_dir}")
    print(f"clips     {summary.clips} ({summary.frames} frames, {cfg.frames} per clip, "
          f"{cfg.width}x{cfg.height} RGB at {cfg.fps:g} fps)")  # fmt: skip
    for split in ("teacher_train", "student_train", "test", "unused"):
        if split in summary.per_split:
            print(f"  {split:<14}{summary.per_split[split]}")
    print(f"classes   {len(summary.classes)}: {', '.join(summary.classes)}")
    print(f"disk      {summary.bytes / 1e6:.1f} MB")
    print(f"time      {summary.seconds:.1f} s with {workers} worker(s)")
    return 0
