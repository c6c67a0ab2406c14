"""``xmkd distill``: train K skeleton students from the teacher's cached labels (eq. 6)."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A
from xmkd.commands._train_common import (
    add_data_args,
    add_run_args,
    announce,
    choose_preset,
    parse_ints,
)

DESCRIPTION = """\
Train K skeleton students together on the unlabeled (video, skeleton) pairs of Student-Train,
supervised by the teacher's labels cached by `xmkd label` (the teacher never runs here), and
validate on the Test split. One batch is loaded once for all students.

supervision (Thoker & Gall, section 3):
  ce     cross-entropy with the teacher's argmax, eq. 3 (the paper's proposal; default)
  kl     KL divergence to the teacher softened with --tau, eq. 1-2 (Hinton KD; x tau^2 by
         default, --no-tau-squared for eq. 1 as written)
  full   ground-truth labels: the full-supervision baseline; --noise F gives a fraction F of the
         samples a random wrong label (Table 1)
  With K >= 2 the mutual term of eq. 6 (KL to the detached peers, tau = 10, no tau^2 as written)
  is added unless --no-mutual ("ensemble without mutual", Table 3).

presets (--preset; without it the data chooses: sessions of xmkd synth or the synthetic source
get synthetic, packed NTU and recorded sessions paper; the start line says which and the epochs).
paper: ST-GCN: SGD nesterov momentum 0.9, lr 0.1, weight decay 1e-4, lr x0.1
after epochs 10 and 50, batch 16, 200 epochs (the paper), 300-frame zero-padded windows; HCN:
Adam lr 1e-3, weight decay 1e-4, x0.99 per epoch, 400 epochs, batch 64, 32-frame crop/resize.
Each student has its own optimizer; the ensemble averages probabilities (--ensemble max: Table 3).
--preset synthetic: CPU-sized students for the embedded synthetic data (width 0.25, dropout
0.1 ST-GCN / 0.2 HCN, Adam lr 1e-3 with cosine decay, batch 16, 12 epochs; one person per window:
ST-GCN 16 frames resampled and centred, HCN its 32-frame crop/resize).

outputs in --out RUN_DIR: last.pt (every epoch, with optimizer/RNG state: --resume continues it
exactly), best.pt (best validation accuracy; what xmkd eval/export/live read), progress.jsonl
(JSON lines: start/step/epoch/end events), tensorboard/ when tensorboard is installed.
Under torchrun (e.g. torchrun --nproc_per_node 2 -m xmkd distill ...) it trains with DDP; the
batch size is the global batch.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distill",
        help="train skeleton students from the teacher's labels (CE + mutual learning)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=A.out_dir,
        required=True,
        metavar="RUN_DIR",
        help="run folder (checkpoints, logs)",
    )
    p.add_argument(
        "--labels",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="teacher label cache from `xmkd label` (not needed with --supervision full)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR/last.pt with its stored configuration (flags given "
        "now override it, e.g. --epochs)",
    )
    p.add_argument(
        "--preset",
        choices=("paper", "synthetic"),
        default=None,
        help="defaults: paper (the paper/references) or synthetic (CPU-sized); default: chosen "
        "from the data (synthetic for sessions of xmkd synth or the synthetic source, paper "
        "otherwise)",
    )
    add_data_args(p, split="student_train")
    p.add_argument(
        "--val-split",
        default=None,
        choices=("test", "none"),
        help="validation split (default: test, as the references do, when the data has labeled "
        "Test clips; best.pt is then picked on Test, so quote last.pt's accuracy as the unbiased "
        "number. Your own recordings (unlabeled A000 clips) have none: no validation there. "
        "none: no validation, best = last)",
    )
    s = p.add_argument_group("students")
    s.add_argument(
        "--students",
        nargs="+",
        type=student_archs,
        default=None,
        metavar="ARCH",
        help="architectures, one per student: stgcn stgcn, or comma-separated stgcn,hcn "
        "(default stgcn,stgcn)",
    )
    s.add_argument(
        "--arch",
        default=None,
        choices=("stgcn", "hcn"),
        help="architecture of every student (with --k)",
    )
    s.add_argument("--k", type=STUDENT_COUNT, default=None, help="number of students (with --arch)")
    s.add_argument(
        "--width",
        type=A.width_float,
        default=None,
        help="channel width multiplier of every student (1 = reference)",
    )
    s.add_argument("--window", type=A.window_int, default=None, help="frames per input window")
    s.add_argument(
        "--fit",
        choices=("pad", "resize", "crop_resize"),
        default=None,
        help="how a clip is fitted to the window (see xmkd.preprocess)",
    )
    s.add_argument(
        "--center",
        choices=("none", "frame", "first"),
        default=None,
        help="subtract person 0's mid spine per frame / from the first frame (see xmkd.preprocess)",
    )
    s.add_argument(
        "--ensemble",
        choices=("mean", "max"),
        default=None,
        help="how the students' probabilities combine (default mean)",
    )
    lo = p.add_argument_group("loss")
    lo.add_argument("--supervision", choices=("ce", "kl", "full"), default=None)
    lo.add_argument(
        "--tau",
        "--kd-tau",
        dest="tau",
        type=A.tau_float,
        default=None,
        help="KL temperature (default 10)",
    )
    lo.add_argument(
        "--tau-squared",
        dest="tau_squared",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scale the teacher KL by tau^2 (default on, as Hinton)",
    )
    lo.add_argument(
        "--mutual",
        dest="mutual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="eq. 6's mutual term between students (default on)",
    )
    lo.add_argument("--mutual-tau", type=A.tau_float, default=None, help="mutual temperature (10)")
    lo.add_argument(
        "--mutual-tau-squared",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scale the mutual term by tau^2 (default off: eq. 6 as written)",
    )
    lo.add_argument(
        "--kl-direction",
        choices=("target_first", "student_first"),
        default=None,
        help="KL(P_T||P_S) as Hinton/DML (default) or eq. 1 literally",
    )
    lo.add_argument(
        "--noise",
        type=A.fraction,
        default=None,
        help="fraction of random wrong labels, with --supervision full (Table 1)",
    )
    lo.add_argument("--noise-seed", type=A.seed_int, default=None)
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=A.positive_int, default=None)
    o.add_argument("--batch-size", type=A.positive_int, default=None, help="global batch size")
    o.add_argument("--lr", type=A.lr_float, default=None, help="initial lr of every student")
    o.add_argument(
        "--milestones",
        type=parse_ints,
        default=None,
        metavar="E1,E2",
        help="epochs after which an SGD student's lr is x0.1",
    )
    o.add_argument("--seed", type=A.seed_int, default=None)
    o.add_argument("--eval-every", type=A.nonneg_int, default=None, help="validate every N epochs")
    add_run_args(p, training=True)
    A.add_check(p, check_students)
    p.set_defaults(func=run)


ARCHS = ("stgcn", "hcn")
STUDENT_COUNT = A.int_range(
    1, A.MAX_STUDENTS, "the paper trains up to 4; each student adds a whole model to every step"
)


def student_archs(text: str) -> str:
    """One --students value: architectures, comma-separated (split again in build_config)."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARCHS]
    if not names or unknown:
        A.fail(f"must be architectures among {', '.join(ARCHS)}, got {text!r}")
    return text


A.describe(student_archs, "names", known=lambda: ARCHS)


def check_students(args: argparse.Namespace) -> None:
    """Options that are only wrong together: the number of students, and a window HCN cannot
    take (its two temporal poolings and fixed-size fc layers need a multiple of 16 frames)."""
    if args.students:
        archs = [a.strip() for s in args.students for a in s.split(",") if a.strip()]
        if len(archs) > A.MAX_STUDENTS:
            A.fail(f"argument --students: at most {A.MAX_STUDENTS} students, got {len(archs)}")
    else:
        archs = [args.arch or "stgcn"]
    if args.window is not None and "hcn" in archs and args.window % 16:
        A.fail(f"argument --window: HCN students need a multiple of 16 frames, got {args.window}")


def build_config(args: argparse.Namespace, base=None):
    """The DistillConfig of the command line (on top of ``base`` when resuming)."""
    import dataclasses

    from xmkd.config import distill_preset
    from xmkd.errors import XmkdError

    if args.students and args.arch:
        raise XmkdError("give either --students or --arch/--k, not both")
    if args.students:
        students = [a.strip() for s in args.students for a in s.split(",") if a.strip()]
    elif args.arch or args.k:
        students = [args.arch or "stgcn"] * (args.k or 2)
    else:
        students = None
    if base is None:
        cfg = distill_preset(args.preset or "paper", students or ["stgcn", "stgcn"])
    else:
        cfg = base
        if students and students != cfg.students:
            raise XmkdError(
                f"the run was started with students {','.join(cfg.students)}; resume with those"
            )
    changes = {}
    simple = {
        "supervision": args.supervision,
        "kd_tau": args.tau,
        "kd_tau_squared": args.tau_squared,
        "mutual": args.mutual,
        "mutual_tau": args.mutual_tau,
        "mutual_tau_squared": args.mutual_tau_squared,
        "kl_direction": args.kl_direction,
        "noise": args.noise,
        "noise_seed": args.noise_seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "ensemble": args.ensemble,
        "seed": args.seed,
        "device": args.device,
        "deterministic": args.deterministic,
        "precision": args.precision,
        "eval_every": args.eval_every,
    }
    changes.update({k: v for k, v in simple.items() if v is not None})
    if args.width is not None:
        changes["student_kwargs"] = [
            {**cfg.kwargs_for(i), "width": args.width} for i in range(cfg.k)
        ]
    spec_changes = {"window": args.window, "fit": args.fit, "center": args.center}
    spec_changes = {k: v for k, v in spec_changes.items() if v is not None}
    if spec_changes:
        spec = cfg.spec().replace(**spec_changes)
        changes["input_spec"] = spec.to_dict()
    if args.lr is not None or args.milestones is not None:
        optim = [cfg.optim_for(i) for i in range(cfg.k)]
        optim = [
            dataclasses.replace(
                o,
                **({"lr": args.lr} if args.lr is not None else {}),
                **({"milestones": args.milestones} if args.milestones is not None else {}),
            )
            for o in optim
        ]
        changes["optim"] = optim
    data = dataclasses.replace(
        cfg.data,
        sessions=[str(s) for s in args.sessions] or cfg.data.sessions,
        packed=args.packed if args.packed is not None else cfg.data.packed,
        labels=args.labels if args.labels is not None else cfg.data.labels,
        benchmark=args.benchmark or cfg.data.benchmark,
        num_workers=args.workers if args.workers is not None else cfg.data.num_workers,
    )
    changes["data"] = data
    try:
        return dataclasses.replace(cfg, **changes)
    except ValueError as exc:
        raise XmkdError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xmkd.checkpoint import load_checkpoint
    from xmkd.classmap import in_target_vocabulary
    from xmkd.config import DistillConfig
    from xmkd.errors import XmkdError
    from xmkd.train.distill import run_summary, train_students
    from xmkd.train.inputs import StudentWindows, class_names_of, skeleton_source
    from xmkd.train.label import labeled_subset, load_labels

    run_dir = Path(args.out)
    base = None
    if args.resume:
        if not (run_dir / "last.pt").is_file():
            raise XmkdError(f"{run_dir / 'last.pt'}: nothing to resume from (no earlier run there)")
        stored = load_checkpoint(run_dir / "last.pt", kind="students")
        base = DistillConfig.from_dict(stored["config"])
    if base is None:
        args.preset, why = choose_preset(args.preset, args.sessions, args.packed)
        start = f"preset {args.preset} ({why})"
    else:
        start = f"resuming {run_dir / 'last.pt'} with its stored configuration"
    cfg = build_config(args, base)
    announce(
        f"{start}, {cfg.resolved_epochs()} epochs, batch {cfg.resolved_batch_size()}, "
        f"students {','.join(cfg.students)}, supervision {cfg.supervision}",
        args.progress_json,
    )
    data = cfg.data
    spec = cfg.spec()
    raw_train = skeleton_source(data.sessions, data.packed, args.split, data.benchmark)
    train = StudentWindows(raw_train, spec, train=True, seed=cfg.seed)
    teacher_logits, class_names, class_map, extra = None, None, None, {}
    if cfg.supervision != "full":
        if not data.labels:
            raise XmkdError(
                f"supervision {cfg.supervision!r} needs the teacher's labels: run `xmkd label` "
                "and pass --labels FILE (or use --supervision full)"
            )
        cache = load_labels(data.labels)
        train, dropped = labeled_subset(train, cache)
        if dropped:
            announce(
                f"{dropped} of {len(raw_train)} training clips have no teacher label (below "
                f"--min-confidence {cache.extra.get('min_confidence', 0):g} in {data.labels}): "
                f"left out, {len(train)} remain",
                args.progress_json,
            )
        if len(train) == 0:
            raise XmkdError(
                f"{data.labels}: the teacher left every training clip without a label; label "
                "again with a lower --min-confidence (or --background)"
            )
        teacher_logits = cache.lookup(train.names, data.labels)
        class_names = cache.class_names
        class_map = cache.extra.get("class_map")
        extra = {"class_map": class_map, "no_label_left_out": dropped}
    class_names = class_names or class_names_of(raw_train)
    val = None
    val_split = args.val_split or "test"
    if val_split != "none":
        try:
            raw_val = skeleton_source(
                data.sessions, data.packed, val_split, data.benchmark, labeled_only=True
            )
        except XmkdError as exc:
            if args.val_split is not None:  # asked for by name: say why it cannot be
                raise XmkdError(
                    f"--val-split test: {', '.join(map(str, data.sessions or [data.packed]))} "
                    "has no labeled Test clips to validate on (your own recordings are "
                    "unlabeled A000 clips); use --val-split none"
                ) from exc
            announce(
                "no validation: the data has no labeled Test clips (your own recordings are "
                "unlabeled); best.pt = last.pt",
                args.progress_json,
            )
            raw_val = None
    if val_split != "none" and raw_val is not None:
        val = StudentWindows(raw_val, spec, train=False)
        try:
            val = in_target_vocabulary(
                val, raw_val.class_names, class_names, class_map, where=f"--labels {data.labels}"
            )
        except XmkdError as exc:
            announce(f"no validation: {exc}", args.progress_json)
            val = None
    result = train_students(
        cfg,
        train,
        class_names,
        spec,
        run_dir,
        teacher_logits=teacher_logits,
        labels=train.labels if cfg.supervision == "full" else None,
        val_set=val,
        resume=args.resume,
        progress_json=args.progress_json,
        console=not args.quiet,
        checkpoint_extra=extra,
    )
    print(run_summary(result))
    return 0
