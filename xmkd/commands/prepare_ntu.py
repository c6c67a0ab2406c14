"""``xmkd prepare-ntu``: pack NTU RGB+D ``.skeleton`` files into memory-mapped arrays."""

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
            "the end and left out."
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
    summary = pack_ntu(
        args.skeletons, args.out, options, workers=args.workers, progress=not args.no_progress
    )
    for line in summary.lines():
        print(line)
    return 0
