"""``xmkd demo``: the whole learning pipeline on the embedded synthetic data, in minutes."""

from __future__ import annotations

import argparse
import time

from xmkd.commands import _args as A

#: The stages whose time the demo reports, keyed by how ``prepare_synthetic`` announces them.
STAGE_MESSAGES = (
    ("generating synthetic data", "synthetic data"),
    ("training the teacher", "teacher training"),
    ("labeling Student-Train", "teacher labeling"),
)


class StageClock:
    """Wall time per stage: a stage runs from its start until the next one starts."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[tuple[str, float]] = [("setup", self.start)]

    def mark(self, stage: str) -> None:
        self.marks.append((stage, time.perf_counter()))

    def say(self, text: str) -> None:
        """``prepare_synthetic``'s announcements: print them and start the stage they name."""
        print(text, flush=True)
        for prefix, stage in STAGE_MESSAGES:
            if text.startswith(prefix):
                self.mark(stage)

    def seconds(self, end: float | None = None) -> dict[str, float]:
        end = time.perf_counter() if end is None else end
        times = [t for _, t in self.marks[1:]] + [end]
        spent: dict[str, float] = {}
        for (stage, start), stop in zip(self.marks, times):
            spent[stage] = spent.get(stage, 0.0) + stop - start
        return spent


def format_timings(spent: dict[str, float], threads: int) -> str:
    """The stage table the demo prints last (the README quotes it). ``threads``: torch's CPU
    threads, because the numbers depend on them (a different summation order in the
    convolutions: the tiny teacher's weights differed by 2e-3 after 3 epochs, 1 vs 2 threads)."""
    total = sum(spent.values())
    rows = [(stage, f"{seconds:.0f}") for stage, seconds in spent.items()]
    rows.append(("total", f"{total:.0f}"))
    width = max(len(stage) for stage, _ in rows)
    lines = ["stage" + " " * (width - 3) + "seconds"]
    lines += [f"{stage.ljust(width)}  {seconds}" for stage, seconds in rows]
    minutes, rest = divmod(round(total), 60)
    lines.append(f"total time {minutes} min {rest} s, {threads} torch CPU threads")
    return "\n".join(lines)


DESCRIPTION = """\
Run the whole cross-modal distillation pipeline on synthetic paired data and print a short table:
  1. generate synthetic (video, skeleton) pairs (preset default: 2400 clips of 10 actions; tiny:
     72 clips of 6, for a smoke test) -- or reuse --sessions
  2. train the RGB-difference TSN teacher on Teacher-Train (labeled videos)
  3. label Student-Train with the teacher (its accuracy there = how right the students' labels are)
  4. distill two ST-GCN students with cross-entropy on the teacher's labels + mutual learning
     (eq. 6), never looking at a skeleton label
  5. evaluate on Test: each student and their ensemble (mean of probabilities)
Everything lands in --out (default runs/demo); a second run reuses what is done. CPU-sized models
(preset "synthetic"); the default preset is meant to finish in under 10 minutes on 2 cores.
The students' checkpoint (OUT/students/best.pt) works with xmkd export / xmkd live / the GUI.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate synthetic data, train teacher, label, distill 2 students, evaluate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", choices=("default", "tiny"), default="default")
    p.add_argument("--out", type=A.out_dir, default="runs/demo")
    p.add_argument(
        "--sessions",
        nargs="+",
        type=A.existing_dir,
        default=[],
        metavar="DIR",
        help="use these synthetic sessions instead of generating",
    )
    p.add_argument(
        "--epochs",
        type=A.positive_int,
        default=None,
        help="student epochs (default: the synthetic preset's, 12)",
    )
    p.add_argument(
        "--teacher-epochs",
        type=A.positive_int,
        default=None,
        help="teacher epochs (default: the synthetic preset's, 30)",
    )
    p.add_argument("--arch", choices=("stgcn", "hcn"), default="stgcn")
    p.add_argument("--seed", type=A.seed_int, default=0)
    p.add_argument("--device", type=A.device_name, default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from xmkd.checkpoint import load_students
    from xmkd.config import resolve_device
    from xmkd.evaluate import format_table, predict, save_report, score_students
    from xmkd.reproduce import ReproduceOptions, Run, prepare_synthetic, run_config
    from xmkd.train.distill import train_students
    from xmkd.train.inputs import StudentWindows, skeleton_source
    from xmkd.train.label import load_labels

    clock = StageClock()
    out = Path(args.out)
    quick = args.preset == "tiny"
    pipe = prepare_synthetic(
        out,
        args.preset,
        args.sessions,
        args.teacher_epochs,
        None,
        args.device,
        quick=False,
        console=not args.quiet,
        say=clock.say,
    )
    options = ReproduceOptions(epochs=args.epochs or (2 if quick else None), device=args.device)
    cfg = run_config(Run("demo", args.arch, k=2), options, args.seed)
    # validation on Test every few epochs only: it shows progress, and costs as much as training
    cfg = dataclasses.replace(cfg, eval_every=max(1, cfg.resolved_epochs() // 4))
    spec = cfg.spec()
    raw_train = skeleton_source(pipe.sessions, None, "student_train")
    raw_test = skeleton_source(pipe.sessions, None, "test", labeled_only=True)
    train = StudentWindows(raw_train, spec, train=True, seed=cfg.seed)
    test = StudentWindows(raw_test, spec, train=False)
    labels = load_labels(pipe.labels_path)
    print(f"distilling 2 {args.arch} students (CE + mutual, {cfg.resolved_epochs()} epochs) ...")
    clock.mark("distillation")
    result = train_students(
        cfg,
        train,
        pipe.class_names,
        spec,
        out / "students",
        teacher_logits=labels.lookup(train.names, str(pipe.labels_path)),
        val_set=test,
        console=not args.quiet,
    )
    clock.mark("evaluation")
    device = resolve_device(args.device)
    models, _ = load_students(result.last)
    logits, targets, _ = predict([m.to(device) for m in models], test, 64, device)
    report = score_students(
        logits,
        targets,
        pipe.class_names,
        top_k=5,
        names=[f"student{i}_{args.arch}" for i in range(2)],
    )
    save_report(report, out / "students" / "eval_test", extra={"checkpoint": str(result.last)})
    teacher = pipe.teacher_accuracy
    print()
    print(
        f"teacher (TSN rgbdiff) accuracy on Student-Train: "
        f"{'n/a' if teacher is None else f'{100 * teacher:.2f}%'} "
        "(the share of right labels the students learn from)"
    )
    print("students on Test (last epoch; no skeleton label was used for training):")
    print(format_table(report))
    print(f"\nstudents: {result.last}  (xmkd export / xmkd live / xmkd gui read it)")
    print()
    import torch

    print(format_timings(clock.seconds(), torch.get_num_threads()))
    return 0
