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
  ntu60      packed NTU-60 skeletons (--packed, xmkd prepare-ntu) and the teacher's labels of
             Student-Train (--labels, from xmkd label over NTU sessions); the paper's
             configuration (preset "paper": ST-GCN batch 16, 200 epochs; HCN references) -- a
             GPU job

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


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's experiments (Tables 1-5) and write a Markdown report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=("synthetic", "ntu60"), default="synthetic")
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
        help="ntu60: packed NTU folder",
    )
    p.add_argument(
        "--labels",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="ntu60: teacher label cache",
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
        help="comma-separated run keys (e.g. stgcn_ce,stgcn_ce_k2)",
    )
    p.add_argument("--device", type=A.device_name, default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    A.add_check(p, check_only)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xmkd.reproduce import ReproduceOptions, reproduce

    options = ReproduceOptions(
        dataset=args.dataset,
        out=args.out,
        synth_preset=args.synth_preset,
        sessions=list(args.sessions),
        packed=args.packed,
        labels=args.labels,
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
    print(path.read_text())
    print(f"report: {path}")
    return 0
