"""``xmkd prepare-ntu``: pack NTU RGB+D ``.skeleton`` files into memory-mapped arrays and, with
``--rgb``, decode the paired videos once into the teacher's clips (:mod:`xmkd.ntu.videos`)."""

from __future__ import annotations

import argparse
import os

from xmkd.commands import _args as A


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-ntu",
        help="pack NTU RGB+D .skeleton files into memory-mapped training arrays",
        description=(
            "Read every .skeleton file under --skeletons (in parallel), select bodies and write "
            "per part a float32 array (N, 3, 300, 25, 2) via numpy memmap ({part}_data.npy) with "
            "labels ({part}_label.npy, action - 1), true frame counts ({part}_frames.npy), sample "
            "names ({part}_names.txt) and a manifest.json. Parts: train and test of the "
            "benchmark; for x-sub benchmarks also the paper's teacher_train and student_train "
            "(the x-sub training subjects split 10/10 on NTU-60; default rule: alternate the "
            "sorted training subjects, see --teacher-subjects). Samples on the official "
            "missing-skeleton list are skipped; malformed files are listed with their error at "
            "the end and left out. With --rgb, the videos of the protocol parts the teacher "
            "reads (Teacher-Train, Student-Train) are paired with their .skeleton files by "
            "name and decoded once, in parallel, into OUT/rgb/<name>_rgb.avi (MJPEG, short "
            "side --short-side) and optionally OUT/flow/<name>/ (--flow); the run is resumable "
            "(run the same command again after an interruption), prints a disk-space estimate "
            "first and stops cleanly before the disk is full; teacher_train and student_train "
            "then keep only the pairs. Then: xmkd teacher train --packed OUT, xmkd label "
            "--packed OUT."
        ),
    )
    p.add_argument(
        "--skeletons",
        type=A.as_path(A.existing_dir),
        required=True,
        help="folder of .skeleton files",
    )
    p.add_argument(
        "--benchmark",
        choices=("xsub60", "xview60", "xsub120", "xset120"),
        default="xsub60",
        help="NTU-60 cross-subject/cross-view or NTU-120 cross-subject/cross-setup (default "
        "xsub60)",
    )
    p.add_argument(
        "--rgb",
        type=A.as_path(A.existing_dir),
        default=None,
        help="folder of NTU's <name>_rgb.avi videos (nturgb+d_rgb): also ingest the videos the "
        "teacher trains on and labels (x-sub benchmarks)",
    )
    p.add_argument(
        "--flow",
        choices=("none", "dis", "tvl1"),
        default="none",
        help="with --rgb: also store optical flow for the flow teacher: dis (OpenCV DIS, fast on "
        "a CPU), tvl1 (TSN's TV-L1, needs opencv-contrib; about 1 frame/s) or none (default)",
    )
    p.add_argument(
        "--flow-preset",
        choices=("ultrafast", "fast", "medium"),
        default="fast",
        help="DIS preset with --flow dis (default fast)",
    )
    p.add_argument(
        "--short-side",
        type=A.int_range(16, 4096, "pixels; TSN uses 256"),
        default=256,
        help="with --rgb: videos are stored with this short side, aspect kept (default 256: "
        "1920x1080 -> 456x256); smaller videos keep their size",
    )
    p.add_argument(
        "--video-test",
        action="store_true",
        help="with --rgb: also ingest the test subjects' videos (the protocol evaluates the "
        "students on skeletons; only `teacher train --eval-split test` reads them)",
    )
    p.add_argument(
        "--min-free-gb",
        type=A.float_range(0, 1e6),
        default=1.0,
        help="with --rgb: stop cleanly before the output disk has less than this free (default 1)",
    )
    p.add_argument("--out", type=A.as_path(A.out_dir), required=True, help="output folder")
    p.add_argument(
        "--selection",
        choices=("motion", "first"),
        default="motion",
        help="body selection: 'motion' (default) tracks body IDs and keeps the 2 that move most, "
        "each in a fixed slot; 'first' takes the first 2 bodies listed per frame (st-gcn's "
        "ntu_gendata)",
    )
    p.add_argument(
        "--workers",
        type=A.int_range(1, A.MAX_WORKERS, "reader processes"),
        default=os.cpu_count() or 1,
        help="parallel reader processes (default: all cores)",
    )
    p.add_argument(
        "--teacher-subjects",
        type=A.keep_text(A.int_list(1, "1,4,8")),
        help="comma-separated x-sub training subjects for Teacher-Train (the rest are "
        "Student-Train); default: every other one of the sorted training subjects "
        "(NTU-60: 1,4,8,13,15,17,19,27,31,35)",
    )
    p.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="pack files holding NaN or inf values (by default they are listed as malformed "
        "and left out: one such value makes every training loss NaN)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xmkd.errors import XmkdError
    from xmkd.ntu.pack import PackOptions, pack_ntu
    from xmkd.ntu.splits import ProtocolSplit

    split = ProtocolSplit()
    if args.teacher_subjects:
        try:
            subjects = tuple(int(s) for s in args.teacher_subjects.split(",") if s.strip())
        except ValueError:
            raise XmkdError(
                f"--teacher-subjects must be comma-separated numbers, got {args.teacher_subjects!r}"
            ) from None
        split = ProtocolSplit(teacher_subjects=subjects)
    if args.workers < 1:
        raise XmkdError("--workers must be at least 1")
    options = PackOptions(
        benchmark=args.benchmark,
        selection=args.selection,
        split=split,
        allow_nonfinite=args.allow_nonfinite,
    )
    pairs, videos = None, None
    if args.rgb is not None:
        pairs, videos = _ingest(args, options)
    elif args.flow != "none" or args.video_test:
        raise XmkdError("--flow and --video-test need the videos: give --rgb DIR")
    summary = pack_ntu(
        args.skeletons,
        args.out,
        options,
        workers=args.workers,
        progress=not args.no_progress,
        pairs=pairs,
        videos=videos,
    )
    for line in summary.lines():
        print(line)
    return 0


def _ingest(args: argparse.Namespace, options) -> tuple[set[str], dict]:
    """Decode the protocol's videos; returns the samples with a stored video and the manifest
    entry. A run stopped for disk space is one sentence; what it stored is kept."""
    from xmkd.errors import XmkdError
    from xmkd.ntu.videos import VideoOptions, ingest_videos, plan_videos, video_parts

    video_options = VideoOptions(
        short_side=args.short_side,
        flow=args.flow,
        flow_preset=args.flow_preset,
        min_free_bytes=int(args.min_free_gb * 1e9),
    )
    video_options.check_flow()
    plan = plan_videos(
        args.skeletons, args.rgb, options.benchmark, options.split, include_test=args.video_test
    )
    for line in plan.lines():
        print(line)
    summary = ingest_videos(
        plan.jobs, args.out, video_options, workers=args.workers, progress=not args.no_progress
    )
    summary.unreadable[:0] = plan.not_files
    for line in summary.lines():
        print(line)
    if summary.stopped:
        raise XmkdError(
            f"prepare-ntu stopped before the disk filled ({summary.stopped}); the "
            f"{len(summary.ingested)} videos stored so far are kept: free some space (or lower "
            "--min-free-gb) and run the same command again to continue"
        )
    entry = {
        "format": "mjpeg-avi",
        "rgb": "rgb",
        "flow": None if args.flow == "none" else "flow",
        "flow_method": None if args.flow == "none" else args.flow,
        "short_side": args.short_side,
        "parts": list(video_parts(args.video_test)),
        "source": str(args.rgb),
        **plan.manifest(),
        **summary.manifest(),
    }
    return set(summary.ingested), entry
