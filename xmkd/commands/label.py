"""``xmkd label``: run the teacher once over the unlabeled pairs and cache its logits."""

from __future__ import annotations

import argparse

from xmkd.commands import _args as A
from xmkd.commands._train_common import add_data_args, add_run_args

DESCRIPTION = """\
Run a teacher checkpoint (`xmkd teacher train`) once over the videos of the unlabeled pairs
(default: the Student-Train split of the given sessions, or of a packed NTU RGB+D folder with its
videos: --packed DIR from `xmkd prepare-ntu --rgb`) and store its class scores per sample name in
one file that `xmkd distill --labels FILE` reads (with the same --packed DIR for NTU); the
teacher never runs during distillation. Batched, on the GPU when there is one. Resumable:
names already in --out are skipped, and the file is rewritten atomically every few batches, so
an interrupted run keeps its work. When the clips carry their true action (synthetic data, NTU),
the teacher's accuracy on them is printed: it is how many of the students' labels will be wrong.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "label",
        help="cache the teacher's predictions for the unlabeled pairs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--teacher", type=A.existing_file, required=True, metavar="CKPT", help="teacher checkpoint"
    )
    p.add_argument(
        "--out", type=A.out_file, required=True, metavar="FILE", help="label cache to write/extend"
    )
    add_data_args(p, split="student_train", video=True)
    p.add_argument("--batch-size", type=A.positive_int, default=32)
    p.add_argument(
        "--save-every", type=A.positive_int, default=20, help="rewrite the file every N batches"
    )
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xmkd.checkpoint import load_teacher
    from xmkd.config import resolve_device
    from xmkd.models.tsn import TSNInputSpec
    from xmkd.train.inputs import TeacherClips, video_source
    from xmkd.train.label import label_dataset

    device = resolve_device(args.device or "auto")
    teacher, meta = load_teacher(args.teacher)
    spec = TSNInputSpec.from_dict(meta.input_spec)
    raw = video_source(args.sessions, meta.modality, args.split, args.benchmark, packed=args.packed)
    data = TeacherClips(raw, spec, train=False)
    labels, facts = label_dataset(
        teacher,
        data,
        data.names,
        args.out,
        meta.class_names,
        modality=meta.modality,
        teacher_path=str(args.teacher),
        batch_size=args.batch_size,
        device=device,
        save_every=args.save_every,
        num_workers=args.workers or 0,
        progress=not args.quiet,
    )
    rate = f" at {facts['samples_per_s']} clips/s" if facts["samples_per_s"] else ""
    print(
        f"{args.out}: {len(labels)} samples ({facts['labeled']} labeled now{rate}, "
        f"{facts['skipped']} already there)"
    )
    accuracy = labels.accuracy()
    if accuracy is not None:
        print(
            f"teacher accuracy on these clips: {100 * accuracy:.2f}% "
            f"(about {100 * (1 - accuracy):.0f}% of the students' labels are wrong)"
        )
    return 0
