"""``xmkd export-dataset``: packed NTU or xmkd recordings as pyskl/mmaction2 training data."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A

DESCRIPTION = """\
Write skeleton data as the annotation pickle that pyskl and mmaction2 train on (the layout of
pyskl's ntu60_3danno.pkl): {"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir",
"label", "keypoint": float32 (M, T, 25, 3) in metres, "total_frames": T}, ...]}, so ST-GCN++,
CTR-GCN and the other models of those toolboxes train on xmkd's data, or on a teacher's labels.

The data: --packed DIR (xmkd prepare-ntu; its benchmark's splits) or --sessions DIR ...
(recordings; the splits of --benchmark, and no_benchmark for your own unlabeled clips).

splits: xsub_train / xsub_val (x-sub training / test subjects; val is the paper's Test),
xsub_teacher_train / xsub_student_train (the paper's Teacher-Train / Student-Train), xview_train /
xview_val (NTU-60 cross-view), xset_train / xset_val (NTU-120 cross-setup), no_benchmark.

labels: the ground truth (the clip's action), or with --labels CACHE (xmkd label) the teacher's
hard labels (argmax of its logits) for the training splits, the ground truth kept in gt_label;
training samples the teacher did not label are left out (counted). The _val splits keep the
ground truth: students are evaluated against it. Example, the paper's student in pyskl:
  xmkd export-dataset --format pyskl --packed ntu60 --labels labels.pt --out ntu60_teacher.pkl
  then in the pyskl config: ann_file='ntu60_teacher.pkl', split='xsub_student_train' (train),
  split='xsub_val' (val/test)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-dataset",
        help="write skeleton data as pyskl/mmaction2's annotation pickle",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--format",
        choices=("pyskl",),
        required=True,
        help="pyskl: the annotation pickle of pyskl and mmaction2's PoseDataset",
    )
    p.add_argument(
        "--out", type=A.out_file, required=True, metavar="FILE.pkl", help="file to write"
    )
    # one of the two is required; checked when the command runs, so that every other option can
    # be parsed (and checked) on its own
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--packed",
        type=A.existing_dir,
        default=None,
        metavar="DIR",
        help="packed NTU RGB+D folder (xmkd prepare-ntu)",
    )
    src.add_argument(
        "--sessions",
        nargs="+",
        type=A.existing_dir,
        default=None,
        metavar="DIR",
        help="session folder(s) in the recordings layout",
    )
    p.add_argument(
        "--labels",
        type=A.existing_file,
        default=None,
        metavar="CACHE",
        help="a teacher's label cache (xmkd label): its hard labels for the training splits",
    )
    p.add_argument(
        "--benchmark",
        choices=("xsub60", "xview60", "xsub120", "xset120"),
        default=None,
        help="--sessions: the benchmark whose splits are written (default xsub60); a packed "
        "folder has its own",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    A.add_check(p, _check_benchmark)
    p.set_defaults(func=run)


def _check_benchmark(args: argparse.Namespace) -> None:
    if args.packed and args.benchmark:
        A.fail(
            "argument --benchmark: a packed folder holds one benchmark (its manifest's); "
            "pack another with xmkd prepare-ntu --benchmark instead"
        )


def run(args: argparse.Namespace) -> int:
    from xmkd.errors import XmkdError
    from xmkd.ntu.pyskl import plan_from_packed, plan_from_sessions, write_pyskl

    if not args.packed and not args.sessions:
        raise XmkdError("give the data to export: --packed DIR or --sessions DIR [DIR ...]")
    if args.packed:
        plan = plan_from_packed(args.packed)
    else:
        plan = plan_from_sessions(args.sessions, args.benchmark or "xsub60")
    summary = write_pyskl(plan, args.out, args.labels, progress=not args.quiet)
    for line in summary.lines():
        print(line)
    return 0
