"""``xmkd eval``: accuracy of a students checkpoint (each student and the ensemble) on a split."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A
from xmkd.commands._train_common import add_data_args, add_run_args

DESCRIPTION = """\
Evaluate the students of a checkpoint (`xmkd distill`'s best.pt) on the Test split: top-1 and
top-5 accuracy, per-class accuracy and the confusion matrix of every student and of the ensemble,
combining the students' probabilities by their mean and by their per-class maximum (Table 3).
Windows are prepared with the checkpoint's own input spec. Students trained on a class map's
target actions (`xmkd label --classes/--actions`) are scored in their own vocabulary: a clip's
true action is the target action of its class's name, or the one the map (stored in the
checkpoint) lists the class under; clips of other classes are left out.

outputs in --out DIR (default: eval_<split> beside the checkpoint): metrics.json (everything),
confusion_<model>.csv (rows = true class, columns = predicted) and confusion_<model>.png.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a students checkpoint: accuracy, per-class, confusion matrices",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        type=A.existing_file,
        help="a students checkpoint (best.pt or last.pt of xmkd distill)",
    )
    add_data_args(p, split="test")
    p.add_argument(
        "--out", type=A.out_dir, default=None, metavar="DIR", help="where the reports go"
    )
    p.add_argument("--batch-size", type=A.positive_int, default=64)
    p.add_argument(
        "--top-k", type=A.positive_int, default=5, help="top-k accuracy (capped at the classes)"
    )
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xmkd.checkpoint import load_students
    from xmkd.classmap import in_target_vocabulary
    from xmkd.config import resolve_device
    from xmkd.errors import XmkdError
    from xmkd.evaluate import evaluate_models, format_table, save_report
    from xmkd.train.inputs import StudentWindows, skeleton_source

    device = resolve_device(args.device or "auto")
    models, meta = load_students(args.checkpoint, map_location="cpu")
    models = [m.to(device) for m in models]
    raw = skeleton_source(args.sessions, args.packed, args.split, args.benchmark, labeled_only=True)
    data = StudentWindows(raw, meta.spec(), train=False)
    if raw.class_names and list(raw.class_names)[: meta.num_classes] != meta.class_names:
        # students of a class map / other vocabulary: the data's classes in theirs
        data = in_target_vocabulary(
            data, raw.class_names, meta.class_names, meta.extra.get("class_map"),
            where=str(args.checkpoint),
        )  # fmt: skip
        outside = int((data.labels < 0).sum())
        if outside == len(data):
            raise XmkdError(
                f"none of the {len(data)} clips of the {args.split} split is of a class that one "
                f"of {args.checkpoint}'s classes stands for: there is nothing to score"
            )
        if outside:
            print(
                f"{outside} of {len(data)} clips are of classes none of the students' classes "
                "stands for: left out"
            )
    if int(data.labels.max(initial=-1)) >= meta.num_classes:
        raise XmkdError(
            f"the data has labels up to {int(data.labels.max()) + 1} but {args.checkpoint} knows "
            f"{meta.num_classes} classes"
        )
    names = [f"student{i}_{arch}" for i, arch in enumerate(meta.archs)]
    report = evaluate_models(
        models,
        data,
        meta.class_names,
        batch_size=args.batch_size,
        device=device,
        top_k=args.top_k,
        names=names,
        num_workers=args.workers or 0,
        progress=not args.quiet,
    )
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    path = save_report(
        report,
        out,
        extra={"checkpoint": str(args.checkpoint), "split": args.split, "ensemble": meta.ensemble},
    )
    print(format_table(report))
    print(f"reports in {out} ({path.name}, confusion_*.csv/png)")
    return 0
