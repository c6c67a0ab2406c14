"""``xmkd teacher train``: train the TSN teacher on Teacher-Train's labeled videos."""

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
Train the video teacher (Temporal Segment Network, ResNet backbone) with labels on the
Teacher-Train split of the given sessions (or of NTU RGB+D ingested with `xmkd prepare-ntu
--rgb`: --packed DIR), then evaluate it on Student-Train: that accuracy is how right the labels it
will give the students are (the paper's flow teacher: 86%). Several GPUs: torchrun
--nproc-per-node N -m xmkd teacher train ... (DDP, as distill).

modalities: rgbdiff (RGB differences, TSN's RGB-diff; the default: a from-scratch RGB-only
teacher does not learn on a CPU budget), rgb, flow (needs optical flow in the sessions: xmkd synth
--flow, or xmkd flow SESSION; in a packed folder: prepare-ntu --flow dis).

presets (--preset; without it the data chooses: sessions of xmkd synth or the synthetic source
get synthetic, packed NTU and recorded sessions paper; the start line says which and the epochs).
paper, TSN's recipe: 3 segments, ResNet-18, SGD momentum 0.9, lr 0.001, weight decay 5e-4,
gradient norm clipped to 20, batch 128, 224x224 crops; RGB/RGB-diff: 80 epochs, lr x0.1 after 30
and 60, dropout 0.8; flow: 340 epochs, steps 190/300, dropout 0.7. Partial BN is on with
--pretrained ImageNet weights (a torchvision ResNet state_dict file) and off from scratch.
synthetic: a quarter-width ResNet-18 with a small stem on 64x64 crops, 4 segments, Adam lr 3e-3
with cosine decay, batch 16, 30 epochs.

outputs in --out RUN_DIR: teacher.pt (the teacher checkpoint `xmkd label` reads; rewritten every
epoch with the training state, so --resume continues it) and progress.jsonl.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "teacher",
        help="train the video teacher (TSN)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="teacher_command", metavar="ACTION")
    t = sub.add_parser(
        "train",
        help="train the TSN teacher on Teacher-Train and evaluate it on Student-Train",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--out", type=A.out_dir, required=True, metavar="RUN_DIR")
    t.add_argument("--modality", choices=("rgbdiff", "rgb", "flow"), default="rgbdiff")
    t.add_argument(
        "--preset",
        choices=("paper", "synthetic"),
        default=None,
        help="paper (TSN's recipe) or synthetic (CPU-sized); default: chosen from the data "
        "(synthetic for sessions of xmkd synth or the synthetic source, paper otherwise)",
    )
    t.add_argument("--resume", action="store_true", help="continue RUN_DIR/teacher.pt")
    add_data_args(t, split="teacher_train", video=True)
    t.add_argument(
        "--eval-split",
        default="student_train",
        choices=("student_train", "test"),
        help="split the finished teacher is evaluated on (default student_train)",
    )
    m = t.add_argument_group("model and optimisation (override the preset)")
    m.add_argument("--backbone", choices=("resnet18", "resnet34", "resnet50"), default=None)
    m.add_argument("--width", type=A.width_float, default=None, help="backbone width multiplier")
    m.add_argument("--segments", type=SEGMENTS, default=None, help="TSN segments per clip")
    m.add_argument("--crop-size", type=CROP_SIZE, default=None, help="network input side in pixels")
    m.add_argument(
        "--pretrained",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="ImageNet ResNet weights (torchvision state_dict file) to start from",
    )
    m.add_argument("--epochs", type=A.positive_int, default=None)
    m.add_argument("--batch-size", type=A.positive_int, default=None)
    m.add_argument("--lr", type=A.lr_float, default=None)
    m.add_argument("--milestones", type=parse_ints, default=None, metavar="E1,E2")
    m.add_argument(
        "--schedule",
        choices=("step", "cosine", "exponential", "none"),
        default=None,
        help="lr schedule (TSN: step at the milestones)",
    )
    m.add_argument("--seed", type=A.seed_int, default=None)
    add_run_args(t, training=True)
    t.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


SEGMENTS = A.int_range(1, 64, "TSN trains with 3 segments and tests with 25")
CROP_SIZE = A.int_range(16, 1024, "pixels of the square input; ImageNet models use 224")


def build_config(args: argparse.Namespace):
    import dataclasses

    from xmkd.config import teacher_preset

    cfg = teacher_preset(args.preset, args.modality)
    changes = {
        k: v
        for k, v in {
            "backbone": args.backbone,
            "num_segments": args.segments,
            "crop_size": args.crop_size,
            "pretrained": args.pretrained,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "device": args.device,
            "deterministic": args.deterministic,
            "precision": args.precision,
        }.items()
        if v is not None
    }
    if args.width is not None:
        changes["model_kwargs"] = {**cfg.model_kwargs, "width": args.width}
    if args.lr is not None or args.milestones is not None or args.schedule is not None:
        optim = cfg.optim
        if args.schedule is not None:
            optim = dataclasses.replace(optim, schedule=args.schedule)
        if args.lr is not None:
            optim = dataclasses.replace(optim, lr=args.lr)
        if args.milestones is not None:
            optim = dataclasses.replace(optim, milestones=args.milestones)
        changes["optim"] = optim
    changes["data"] = dataclasses.replace(
        cfg.data,
        sessions=[str(s) for s in args.sessions],
        packed=str(args.packed) if args.packed else None,
        benchmark=args.benchmark,
        num_workers=args.workers or 0,
    )
    return dataclasses.replace(cfg, **changes)


def run(args: argparse.Namespace) -> int:
    from xmkd.train.inputs import TeacherClips, class_names_of, video_source
    from xmkd.train.teacher import build_teacher, train_teacher

    args.preset, why = choose_preset(args.preset, args.sessions, args.packed)
    cfg = build_config(args)
    announce(
        f"preset {args.preset} ({why}), {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"{cfg.crop_size}x{cfg.crop_size} crops, {cfg.backbone}",
        args.progress_json,
    )
    packed = cfg.data.packed
    raw_train = video_source(
        cfg.data.sessions, cfg.modality, args.split, cfg.data.benchmark, packed=packed
    )
    raw_eval = video_source(
        cfg.data.sessions,
        cfg.modality,
        args.eval_split,
        cfg.data.benchmark,
        labeled_only=True,
        packed=packed,
    )
    class_names = class_names_of(raw_train)
    model = build_teacher(cfg, len(class_names))
    spec = cfg.input_spec(model)
    result = train_teacher(
        cfg,
        TeacherClips(raw_train, spec, train=True, seed=cfg.seed),
        class_names,
        spec,
        args.out,
        eval_set=TeacherClips(raw_eval, spec, train=False),
        resume=args.resume,
        progress_json=args.progress_json,
        console=not args.quiet,
        model=model,
    )
    acc = result.student_train_accuracy
    shown = f"{100 * acc:.2f}%" if acc is not None else "n/a (no labeled clips)"
    announce(f"teacher -> {result.path}; accuracy on {args.eval_split}: {shown}", None)
    return 0
