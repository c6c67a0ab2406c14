"""``xmkd label``: run a video teacher once over the unlabeled pairs and cache its labels."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xmkd.commands import _args as A
from xmkd.commands._train_common import add_data_args, add_run_args

DESCRIPTION = """\
Run a video teacher once over the videos of the unlabeled pairs (default: the Student-Train
split of the given sessions, or of a packed NTU RGB+D folder with its videos: --packed DIR from
`xmkd prepare-ntu --rgb`; your own recordings: --split all) and store its class scores per
sample name in one file that `xmkd distill --labels FILE` reads; the teacher never runs during
distillation. Batched, on the GPU when there is one. Resumable: names already in --out are
skipped, and the file is rewritten atomically every few batches, so an interrupted run keeps its
work (resume with the same teacher, classes and thresholds).

teachers (--teacher SPEC):
  PATH                 an xmkd TSN checkpoint (`xmkd teacher train`)
  torchvision:ARCH     a torchvision video classifier (r3d_18, mc3_18, r2plus1d_18, s3d,
                       mvit_v1_b, mvit_v2_s, swin3d_t/s/b) with Kinetics-400 classes; weights from
                       --weights FILE (a state_dict) or torchvision's cache; --clips-per-video N
                       averages N clips per video
  xclip:MODEL          an X-CLIP video-text model (a local folder or a Hugging Face hub id)
  clip:MODEL           a CLIP image-text model, averaged over sampled frames
  The last two are open-vocabulary: they score the target actions' text prompts, so they need
  --classes MAP (with prompts) or --actions; --temperature T divides their similarities.

target actions (what the students will learn):
  (none)               the teacher's own classes
  --classes MAP        a class map: a TOML file, or a shipped map by name (ntu60: NTU-60's
                       actions with prompts; ntu60_from_kinetics400: NTU-60 actions <- Kinetics-400
                       classes, the 20 that have one). Per [[action]]: name, teacher = [its
                       teacher classes], prompts = [...]; a closed-set teacher's probabilities
                       are summed per action
  --actions "a, b"     actions by name: for a closed-set teacher, its classes of those names; for
                       an open-vocabulary one, prompts "a video of a person NAME" and "NAME"

no label: a clip's confidence is its best target action's probability (for a closed-set teacher
the mass on that action's classes; for an open-vocabulary one the softmax over the actions). A
clip below --min-confidence gets no label: the cache lists it and `xmkd distill` leaves it out.
With --background instead, a last class "background" (the mass outside the target actions,
raised to --min-confidence for the clips below it) labels those clips, and none is left out.

Per target action it prints how many clips it labeled and the mean confidence, and saves a
confidence histogram beside the cache (OUT_confidence.png). When the clips carry their true
action (synthetic data, NTU; mapped to the target actions by name or by the map's teacher classes
and aliases), the teacher's accuracy on them is printed: it is how many of the students' labels
will be wrong. --preview N shows the teacher's top classes on N clips spread over the data and
writes nothing (--json: one JSON object per clip), to catch a wrong map before a long run.

examples:
  xmkd label --teacher runs/teacher/teacher.pt --sessions data/s1 --out labels.pt
  xmkd label --teacher torchvision:r3d_18 --weights r3d_18.pth --classes ntu60_from_kinetics400 \\
      --min-confidence 0.3 --sessions data/lab --split all --out labels.pt
  xmkd label --teacher xclip:microsoft/xclip-base-patch32 --actions "drink water, sit down" \\
      --sessions data/lab --split all --preview 8
"""

#: teacher kinds whose specs name a model (see xmkd.teachers); a TSN teacher is a path
OPEN_VOCABULARY = ("xclip", "clip")


def teacher_spec(text: str) -> str:
    """--teacher: ``KIND:MODEL`` of a known kind (the model is checked when opened), else an
    existing checkpoint file."""
    from xmkd.teachers import KINDS

    head, sep, name = text.partition(":")
    if sep and head in KINDS:
        if not name.strip():
            A.fail(f"name the model after '{head}:', e.g. {head}:{_EXAMPLES[head]}")
        return text
    return A.existing_file(text)


_EXAMPLES = {
    "torchvision": "r3d_18",
    "xclip": "microsoft/xclip-base-patch32",
    "clip": "openai/clip",
}
# its bad values are those of a file that must exist (a KIND:MODEL spec is text)
A.describe(teacher_spec, "existing_file")


def class_map_arg(text: str) -> str:
    """--classes: an existing class map file or the short name of a shipped one."""
    from xmkd.classmap import shipped_class_maps

    if text.strip() and text.removesuffix(".toml") in shipped_class_maps():
        return text
    return A.existing_file(text)


A.describe(class_map_arg, "existing_file")


def action_names(text: str) -> list[str]:
    """--actions: comma-separated action names, each once."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        A.fail(f"must be comma-separated action names, e.g. 'drink water, sit down', got {text!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        A.fail(f"names {', '.join(repr(n) for n in twice)} more than once")
    return names


action_names.__name__ = "names"
A.describe(action_names, "text_list")

MIN_CONFIDENCE = A.float_range(0.0, 1.0, hi_open=True, why="1 would leave no clip labeled")
CLIPS_PER_VIDEO = A.int_range(1, 32, "clips averaged per video; each one is a full forward pass")
TEMPERATURE = A.float_range(
    0.0, A.MAX_TAU, lo_open=True, why="divides the open-vocabulary similarities"
)
PREVIEW = A.int_range(1, 1000, "clips to show")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "label",
        help="cache a video teacher's labels for the unlabeled pairs (class maps, thresholds)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t = p.add_argument_group("teacher")
    t.add_argument(
        "--teacher",
        type=teacher_spec,
        required=True,
        metavar="SPEC",
        help="PATH (xmkd TSN checkpoint) | torchvision:ARCH | xclip:MODEL | clip:MODEL",
    )
    t.add_argument(
        "--weights",
        type=A.existing_file,
        default=None,
        metavar="FILE",
        help="state_dict of a torchvision:ARCH teacher (default: torchvision's cache)",
    )
    t.add_argument(
        "--clips-per-video",
        type=CLIPS_PER_VIDEO,
        default=None,
        metavar="N",
        help="torchvision teachers: average N clips spread over each video (default 1)",
    )
    t.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="pretrained/open-vocabulary teachers: compute dtype (default float32)",
    )
    t.add_argument(
        "--temperature",
        type=TEMPERATURE,
        default=None,
        metavar="T",
        help="open-vocabulary teachers: softmax temperature of the prompt similarities",
    )
    c = p.add_argument_group("target actions")
    c.add_argument(
        "--classes",
        type=class_map_arg,
        default=None,
        metavar="MAP",
        help="class map: a TOML file or a shipped map (ntu60, ntu60_from_kinetics400)",
    )
    c.add_argument(
        "--actions",
        type=action_names,
        default=None,
        metavar="'A, B'",
        help="target actions by name, comma-separated (instead of --classes)",
    )
    c.add_argument(
        "--min-confidence",
        type=MIN_CONFIDENCE,
        default=0.0,
        metavar="P",
        help="clips whose best target probability is below P get no label (default 0)",
    )
    c.add_argument(
        "--background",
        action="store_true",
        help="label clips below --min-confidence 'background' (an extra class) instead",
    )
    p.add_argument(
        "--out",
        type=A.out_file,
        default=None,
        metavar="FILE",
        help="label cache to write/extend (required unless --preview)",
    )
    p.add_argument(
        "--preview",
        type=PREVIEW,
        default=None,
        metavar="N",
        help="show the teacher's top classes on N clips and exit; writes nothing",
    )
    p.add_argument("--json", action="store_true", help="with --preview: one JSON line per clip")
    add_data_args(p, split="student_train", video=True)
    p.add_argument("--batch-size", type=A.positive_int, default=32)
    p.add_argument(
        "--save-every", type=A.positive_int, default=20, help="rewrite the file every N batches"
    )
    add_run_args(p)
    p.set_defaults(func=run)


def _check_options(args: argparse.Namespace, kind: str) -> None:
    from xmkd.errors import XmkdError

    if args.classes and args.actions:
        raise XmkdError("give the target actions either as --classes MAP or as --actions, not both")
    if args.preview is None and not args.out:
        raise XmkdError("--out FILE is required (or --preview N to look without writing)")
    if args.json and args.preview is None:
        raise XmkdError("--json is for --preview N (labeling reports with --progress-json)")
    where = {
        "clips_per_video": ("--clips-per-video", ("torchvision",)),
        "temperature": ("--temperature", OPEN_VOCABULARY),
        "dtype": ("--dtype", ("torchvision", *OPEN_VOCABULARY)),
    }
    for key, (flag, kinds) in where.items():
        if getattr(args, key) is not None and kind not in kinds:
            raise XmkdError(
                f"{flag} is for {' and '.join(k + ':' for k in kinds)} teachers, not {args.teacher}"
            )


def _jsonable(info: Any) -> Any:
    """Plain JSON data (the label cache stores it; weights_only loading takes nothing else)."""
    import json

    return json.loads(json.dumps(info, default=str))


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from xmkd.classmap import ClassMap, LabelRule, open_class_map
    from xmkd.config import resolve_device
    from xmkd.teachers import open_teacher, teacher_kind
    from xmkd.train.inputs import video_source
    from xmkd.train.label import label_dataset
    from xmkd.train.progress import Progress

    kind = teacher_kind(args.teacher)
    _check_options(args, kind)
    class_map = None
    if args.classes:
        class_map = open_class_map(args.classes)
    elif args.actions:
        class_map = ClassMap.from_names(args.actions)
    options = {
        k: v
        for k, v in (
            ("clips_per_video", args.clips_per_video),
            ("dtype", args.dtype),
            ("temperature", args.temperature),
        )
        if v is not None
    }
    prompts = class_map.prompts() if class_map is not None and kind in OPEN_VOCABULARY else None
    teacher = open_teacher(args.teacher, weights=args.weights, prompts=prompts, **options)
    if class_map is not None and not teacher.open_vocabulary:
        class_map.check_against(teacher.class_names, teacher=args.teacher)
    rule = LabelRule(
        teacher.class_names,
        class_map,
        open_vocabulary=teacher.open_vocabulary,
        min_confidence=args.min_confidence,
        background=args.background,
    )
    device = resolve_device(args.device or "auto")
    raw = video_source(
        args.sessions, teacher.modality, args.split, args.benchmark, packed=args.packed
    )
    data = teacher.inputs(raw)
    if args.preview is not None:
        return preview(teacher.model, rule, data, raw, args.preview, args.batch_size, device,
                       args.json, progress=not args.quiet)  # fmt: skip

    out = Path(args.out)
    stdout_is_json = args.progress_json == "-"
    say_to = sys.stderr if stdout_is_json else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=say_to, flush=True)

    events = Progress(None, args.progress_json, console=False, tensorboard=False)
    events.event(
        "start",
        teacher=args.teacher,
        kind=teacher.kind,
        classes=rule.target_names,
        total=len(raw),
        out=str(out),
    )
    clock = {"t0": time.perf_counter(), "first": None}

    def on_progress(done: int, total: int) -> None:
        if clock["first"] is None:
            clock["first"] = done
        now = time.perf_counter() - clock["t0"]
        rate = (done - clock["first"]) / now if now > 0 else 0.0
        eta = round((total - done) / rate, 1) if rate > 0 else None
        events.event("progress", done=done, total=total, eta_s=eta)

    try:
        labels, facts = label_dataset(
            teacher.model,
            data,
            list(raw.names),
            out,
            teacher.class_names,
            modality=teacher.modality,
            teacher_path=teacher.source or args.teacher,
            batch_size=args.batch_size,
            device=device,
            save_every=args.save_every,
            num_workers=args.workers or 0,
            progress=not args.quiet,
            rule=rule,
            data_classes=getattr(raw, "class_names", None),
            facts={
                "teacher_kind": teacher.kind,
                "teacher_spec": args.teacher,
                "teacher_weights": str(args.weights) if args.weights else None,
                "teacher_info": _jsonable(teacher.info),
            },
            on_progress=on_progress,
        )
        rate = f" at {facts['samples_per_s']} clips/s" if facts["samples_per_s"] else ""
        say(
            f"{out}: {len(labels)} samples ({facts['labeled']} labeled now{rate}, "
            f"{facts['skipped']} already there)"
        )
        say(format_action_table(labels, args.min_confidence))
        histogram = save_confidence_histogram(labels, out, args.min_confidence)
        say(f"confidence histogram: {histogram}")
        accuracy = labels.accuracy()
        if accuracy is not None:
            vocabulary = " (in the target actions)" if class_map is not None else ""
            say(
                f"teacher accuracy on these clips{vocabulary}: {100 * accuracy:.2f}% "
                f"(about {100 * (1 - accuracy):.0f}% of the students' labels are wrong)"
            )
        events.event(
            "done",
            labels=str(out),
            labeled=len(labels.labeled_names()),
            no_label=len(labels.no_label),
            accuracy=accuracy,
            clips=len(labels),
            labeled_now=facts["labeled"],
            histogram=str(histogram),
        )
    finally:
        events.close()
    return 0


def format_action_table(labels: Any, min_confidence: float) -> str:
    """Per target action: how many clips it labeled and their mean confidence; then the clips
    without a label."""
    pred = labels.predictions()
    confidence = labels.confidence()
    from xmkd.tables import text_table

    rows = []
    for c, name in enumerate(labels.class_names):
        hit = pred == c
        mean = f"{float(confidence[hit].mean()):.3f}" if bool(hit.any()) else "-"
        rows.append((name, str(int(hit.sum())), mean))
    missing = pred < 0
    if bool(missing.any()) or min_confidence > 0:
        mean = f"{float(confidence[missing].mean()):.3f}" if bool(missing.any()) else "-"
        rows.append((f"(no label: below {min_confidence:g})", str(int(missing.sum())), mean))
    return text_table(("target action", "clips", "mean confidence"), rows)


def save_confidence_histogram(labels: Any, out: Any, min_confidence: float) -> Any:
    """``<out stem>_confidence.png`` beside the cache: how confident the teacher was per clip
    (the best target action's probability), labeled and no-label clips stacked."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    out = Path(out)
    path = out.with_name(f"{out.stem}_confidence.png")
    confidence = labels.confidence().numpy()
    labeled = labels.labeled_mask().numpy()
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0.0, 1.0, 21)
    ax.hist(
        [confidence[labeled], confidence[~labeled]],
        bins=bins,
        stacked=True,
        color=["tab:blue", "tab:gray"],
        label=["labeled", "no label"],
    )
    if min_confidence > 0:
        ax.axvline(min_confidence, color="tab:red", linestyle="--", label="--min-confidence")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("confidence (best target action's probability)")
    ax.set_ylabel("clips")
    ax.set_title(f"{out.name}: {len(labels)} clips, {int((~labeled).sum())} without a label")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def preview(
    model: Any,
    rule: Any,
    data: Any,
    raw: Any,
    count: int,
    batch_size: int,
    device: str,
    as_json: bool,
    progress: bool = True,
) -> int:
    """The teacher's top-3 classes, the label and its confidence on ``count`` clips spread
    evenly over ``raw``; JSON lines or a table on stdout."""
    import json

    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    picked = sorted({int(i) for i in np.linspace(0, len(raw) - 1, min(count, len(raw))).round()})
    loader = DataLoader(Subset(data, picked), batch_size=batch_size, shuffle=False)
    model = model.to(device).eval()
    data_classes = list(getattr(raw, "class_names", None) or [])
    from xmkd.classmap import dataset_targets

    truth_to_target = dataset_targets(data_classes, rule.action_names, rule.class_map)
    records = []
    with torch.no_grad():
        for x, target, index in tqdm(loader, desc="preview", disable=not progress, leave=False):
            logits = model(x.to(device)).float().cpu()
            probs = torch.softmax(logits.double(), dim=1)
            stored, confidence, labeled = rule.map_logits(logits)
            for row in range(len(index)):
                true = int(target[row])
                k = min(3, probs.shape[1])
                p, c = probs[row].topk(k)
                label = rule.target_names[int(stored[row].argmax())] if labeled[row] else None
                known = 0 <= true < len(data_classes)
                target_of_truth = int(truth_to_target[true]) if known else -1
                records.append(
                    {
                        "name": raw.names[int(index[row])],
                        "true": data_classes[true] if known else None,
                        "true_target": (
                            rule.action_names[target_of_truth] if target_of_truth >= 0 else None
                        ),
                        "top": [
                            {
                                "class": rule.teacher_classes[int(ci)],
                                "p": round(float(pi), 4),
                                "target": rule.action_of_teacher_class(int(ci)),
                            }
                            for pi, ci in zip(p, c)
                        ],
                        "label": label,
                        "confidence": round(float(confidence[row]), 4),
                    }
                )
    if as_json:
        for record in records:
            print(json.dumps(record), flush=True)
        return 0
    rows = [("clip", "true", "label (confidence)", "teacher's top classes")]
    for r in records:
        tops = []
        for t in r["top"]:
            mapped = t["target"] and t["target"] != t["class"]
            tops.append(f"{t['class']} {t['p']:.2f}" + (f" -> {t['target']}" if mapped else ""))
        label = r["label"] or "no label"
        rows.append(
            (r["name"], r["true"] or "?", f"{label} ({r['confidence']:.2f})", ", ".join(tops))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
