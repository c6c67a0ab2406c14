"""``xmkd reproduce``: the paper's Tables 1-5 on synthetic data or NTU RGB+D, as a report."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A

DESCRIPTION = """\
Run the protocol of Thoker & Gall's Tables 1-5 and write a Markdown report with our numbers
beside the paper's: the teacher's accuracy on Student-Train; ST-GCN with full supervision and
5-25% wrong labels (Table 1); KL distillation with tau = 1..50 (Table 2); K = 1..4 students with
and without mutual learning, ensembles by mean and max (Table 3); cross-entropy vs KL (Table 4);
HCN (Table 5). Every run trains on Student-Train and is evaluated once, after its last epoch, on
Test. Finished runs are cached in OUT/runs, so an interrupted reproduction continues.

datasets:
  synthetic  generates the default synthetic set (or uses --sessions), trains the RGB-diff teacher,
             labels Student-Train, then runs the students with CPU-sized models (preset
             "synthetic"); --quick: the tiny set, 1 epoch, 7 runs (what the tests run)
  ntu60      NTU RGB+D 60 from the download (--ntu-root DIR holding nturgb+d_skeletons/ and
             nturgb+d_rgb/): ingestion (xmkd prepare-ntu --rgb, into OUT/data/ntu60), the TSN
             teacher on Teacher-Train (xmkd teacher train --packed, OUT/teacher), its labels of
             Student-Train (xmkd label --packed, OUT/labels.pt), then the students with the
             paper's configuration (preset "paper": ST-GCN batch 16, 200 epochs; HCN
             references) -- a GPU job. Each stage is skipped once finished and continues where
             it stopped; OUT/stages.json records their commands. Given --packed DIR instead of
             --ntu-root, the ingestion is yours; given --labels FILE too, the teacher is yours.
             --stop-after ingest: ingest on a CPU machine (or before torchrun), the rest later
  ntu120     the same on NTU RGB+D 120 (benchmark xsub120); the paper reports NTU-60 only

several GPUs: ingest first (--stop-after ingest), then
  torchrun --nproc_per_node N -m xmkd reproduce --dataset ntu60 --ntu-root DIR --out OUT

The report says what came out, in whatever order; nothing is tuned to match the paper.
"""


SEEDS = A.int_range(1, 100, "each seed repeats every run of the protocol")


def run_keys() -> list[str]:
    """Every run key of the protocol (xmkd.reproduce.protocol_runs), for --only."""
    from xmkd.reproduce import protocol_runs

    return [r.key for r in protocol_runs()]


def check_only(args: argparse.Namespace) -> None:
    """--quick runs a subset of the protocol: --only must name runs of that subset."""
    if args.quick and args.only:
        from xmkd.reproduce import protocol_runs

        quick = [r.key for r in protocol_runs(quick=True)]
        outside = [k for k in args.only.split(",") if k.strip() and k.strip() not in quick]
        if outside:
            A.fail(
                f"argument --only: {', '.join(outside)} not among the --quick runs "
                f"({', '.join(quick)})"
            )


def check_ntu(args: argparse.Namespace) -> None:
    """--packed is the ingestion's output: not with --ntu-root, which reproduce ingests."""
    if args.ntu_root and args.packed:
        A.fail("argument --packed: not with --ntu-root (reproduce ingests --ntu-root itself)")


def ntu_options_for_synthetic(args: argparse.Namespace) -> list[str]:
    """The NTU-only options given with --dataset synthetic (checked when the command runs, so
    that each option still parses on its own)."""
    given = {
        "--ntu-root": args.ntu_root,
        "--packed": args.packed,
        "--labels": args.labels,
        "--stop-after": args.stop_after,
        "--teacher-pretrained": args.teacher_pretrained,
    }
    return [opt for opt, value in given.items() if value]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's experiments (Tables 1-5) and write a Markdown report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=("synthetic", "ntu60", "ntu120"), default="synthetic")
    p.add_argument(
        "--ntu-root",
        type=A.existing_dir,
        default=None,
        metavar="DIR",
        help="ntu60/ntu120: the download, with nturgb+d_skeletons/ and nturgb+d_rgb/ in it",
    )
    p.add_argument(
        "--out",
        type=A.out_dir,
        default="runs/reproduce",
        help="output folder (default runs/reproduce)",
    )
    p.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, a subset of runs")
    p.add_argument("--seeds", type=SEEDS, default=1, help="seeds per run (mean ± std reported)")
    p.add_argument("--synth-preset", choices=("default", "tiny"), default="default")
    p.add_argument(
        "--sessions",
        nargs="+",
        type=A.existing_dir,
        default=[],
        metavar="DIR",
        help="existing synthetic session(s) instead of generating",
    )
    p.add_argument(
        "--packed",
        type=A.existing_dir,
        default=None,
        metavar="DIR",
        help="ntu60/ntu120: an ingested (packed) NTU folder instead of --ntu-root",
    )
    p.add_argument(
        "--labels",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="ntu60/ntu120: a teacher label cache (xmkd label) instead of training the teacher",
    )
    p.add_argument(
        "--teacher-modality",
        choices=("rgbdiff", "rgb", "flow"),
        default="rgbdiff",
        help="ntu60/ntu120: the teacher's input (the paper's best teacher is flow; it needs "
        "flow from the ingestion)",
    )
    p.add_argument(
        "--teacher-pretrained",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="ntu60/ntu120: ImageNet ResNet weights (torchvision state_dict) for the teacher, "
        "as TSN's recipe",
    )
    p.add_argument(
        "--ingest-workers",
        type=A.int_range(1, A.MAX_WORKERS, "decoding processes"),
        default=None,
        help="ntu60/ntu120: ingestion processes (default: every core)",
    )
    p.add_argument(
        "--stop-after",
        choices=("ingest", "teacher", "labels"),
        default=None,
        help="ntu60/ntu120: stop after this stage (e.g. ingest on a CPU machine first)",
    )
    p.add_argument("--epochs", type=A.positive_int, default=None, help="student epochs (override)")
    p.add_argument("--teacher-epochs", type=A.positive_int, default=None)
    p.add_argument("--student-width", type=A.width_float, default=None)
    p.add_argument("--teacher-width", type=A.width_float, default=None)
    p.add_argument(
        "--only",
        type=A.keep_text(A.name_list(run_keys, "run keys")),
        default=None,
        metavar="KEYS",
        help="comma-separated run keys, among: " + ", ".join(run_keys()),
    )
    p.add_argument("--device", type=A.device_name, default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    A.add_check(p, check_only)
    A.add_check(p, check_ntu)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xmkd.errors import XmkdError
    from xmkd.reproduce import ReproduceOptions, reproduce

    if args.dataset == "synthetic" and ntu_options_for_synthetic(args):
        raise XmkdError(
            f"{', '.join(ntu_options_for_synthetic(args))}: only for --dataset ntu60 or ntu120"
        )
    if args.dataset != "synthetic" and args.sessions:
        raise XmkdError("--sessions: only for --dataset synthetic (NTU: --ntu-root or --packed)")
    options = ReproduceOptions(
        dataset=args.dataset,
        out=args.out,
        synth_preset=args.synth_preset,
        sessions=list(args.sessions),
        packed=args.packed,
        labels=args.labels,
        ntu_root=args.ntu_root,
        teacher_modality=args.teacher_modality,
        teacher_pretrained=args.teacher_pretrained,
        ingest_workers=args.ingest_workers,
        stop_after=args.stop_after,
        quick=args.quick,
        seeds=args.seeds,
        epochs=args.epochs,
        teacher_epochs=args.teacher_epochs,
        student_width=args.student_width,
        teacher_width=args.teacher_width,
        device=args.device,
        only=[k for k in (args.only or "").split(",") if k],
    )
    path = reproduce(options, console=not args.quiet)
    if path is None:  # --stop-after, or a torchrun rank other than 0
        return 0
    print(path.read_text())
    print(f"report: {path}")
    return 0
