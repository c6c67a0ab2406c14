"""Class maps on a trained teacher: students distilled into a merged, renamed vocabulary.

    python bench/bench_class_map.py                        # default synthetic preset, from scratch
    python bench/bench_class_map.py --from-run runs/demo   # reuse `xmkd demo`'s data and teacher
    python bench/bench_class_map.py --preset tiny --epochs 2   # a quick look

A TSN teacher trained on the synthetic data with its own class names (``xmkd demo``'s, or one
trained here as ``xmkd reproduce`` does) labels Student-Train twice through ``xmkd label``: once
in its own vocabulary and once with a class map that merges the synthetic library's
skeleton-ambiguous groups (cup / phone / food at the face; pen+notepad / phone in front of the
chest) into one action each and renames the other classes. Students are distilled from each
cache (``xmkd distill``, two ST-GCN students, CE + mutual, the synthetic preset) and scored on
Test with ``xmkd eval``, whose truth is mapped to the students' vocabulary.

The table compares the vocabularies: the teacher's accuracy on Student-Train (in that
vocabulary: how many of the students' labels are right), each student's and the ensemble's
top-1 on Test, and the share of Test's most frequent class in that vocabulary (what always
answering it scores; merged groups are bigger classes). The middle row scores the original
students in the merged vocabulary (their probabilities summed per target action), which says
whether training on the merged labels beats merging a fine-grained model's output afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmkd.classmap import ClassMap, TargetAction, dataset_targets  # noqa: E402
from xmkd.cli import main  # noqa: E402
from xmkd.tables import print_table as table  # noqa: E402
from xmkd.train.label import load_labels  # noqa: E402

#: the merged vocabulary: the synthetic library's skeleton-ambiguous groups become one action
GROUP_NAMES = {"face": "hand at the face", "front": "hands in front of the chest"}
#: and the other classes are renamed (a target vocabulary is the user's, not the teacher's)
RENAMED = {"wave hand": "greet", "kick something": "kick", "sit down": "sit",
           "clapping": "applaud", "bow": "bow", "jump up": "jump", "punch": "punch"}  # fmt: skip


def merged_map(class_names: list[str]) -> ClassMap:
    """The merged map of the synthetic classes present (groups first seen, in class order)."""
    from xmkd.synth.motion import ACTIONS

    group_of = {a.name: a.group for a in ACTIONS}
    targets: dict[str, list[str]] = {}
    for name in class_names:
        group = group_of.get(name, "")
        target = GROUP_NAMES[group] if group in GROUP_NAMES else RENAMED.get(name, name)
        targets.setdefault(target, []).append(name)
    return ClassMap([TargetAction(t, tuple(c)) for t, c in targets.items()], "merged")


def write_map(cmap: ClassMap, path: Path) -> Path:
    lines = []
    for action in cmap.actions:
        teacher = ", ".join(json.dumps(c) for c in action.teacher)
        lines += ["[[action]]", f"name = {json.dumps(action.name)}", f"teacher = [{teacher}]", ""]
    path.write_text("\n".join(lines))
    return path


def run_cli(argv: list[str], quiet: bool = True) -> str:
    """Run an xmkd command in-process; its stdout (raises on a non-zero exit)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    if code:
        raise SystemExit(f"xmkd {' '.join(argv)} exited with {code}")
    if not quiet:
        print(buffer.getvalue(), end="")
    return buffer.getvalue()


def test_scores(run_dir: Path, session: str, out: Path) -> dict[str, float]:
    """`xmkd eval` of a run's last epoch: top-1 per student and ensemble rule, and the share
    of the most frequent class among the scored Test clips ("majority")."""
    run_cli(["eval", str(run_dir / "last.pt"), "--sessions", session, "--quiet",
             "--out", str(out)])  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    scores = {m["name"]: m["top1"] for m in metrics["students"]}
    scores.update({f"ensemble_{k}": m["top1"] for k, m in metrics["ensembles"].items()})
    support = np.asarray(metrics["students"][0]["confusion"]).sum(axis=1)
    scores["majority"] = float(support.max() / support.sum())
    return scores


def merged_after(run_dir: Path, session: str, cmap: ClassMap) -> dict[str, float]:
    """The original students scored in the merged vocabulary: probabilities summed per target
    action, truth mapped the way `xmkd eval` maps it."""
    from xmkd.checkpoint import load_students
    from xmkd.evaluate import predict, score_students, softmax
    from xmkd.train.inputs import StudentWindows, skeleton_source

    models, meta = load_students(run_dir / "last.pt")
    raw = skeleton_source([session], None, "test", labeled_only=True)
    logits, labels, _ = predict(models, StudentWindows(raw, meta.spec(), train=False))
    m = cmap.matrix(meta.class_names).numpy()
    merged = [np.log(np.clip(softmax(z.astype(np.float64)) @ m, 1e-12, None)) for z in logits]
    truth = dataset_targets(raw.class_names, cmap.names, cmap)[labels]
    names = [f"student{i}_{a}" for i, a in enumerate(meta.archs)]
    report = score_students(merged, truth, cmap.names, names=names)
    scores = {m.name: m.top1 for m in report.all()}
    support = np.bincount(truth[truth >= 0], minlength=len(cmap))
    scores["majority"] = float(support.max() / support.sum())
    return scores


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_class_map"))
    ap.add_argument("--preset", choices=("default", "tiny"), default="default",
                    help="synthetic data to generate when no --from-run is given")  # fmt: skip
    ap.add_argument("--from-run", type=Path, default=None,
                    help="an `xmkd demo`/`xmkd reproduce` folder: its data/synth_* and "
                    "teacher/teacher.pt are reused (read only)")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=None, help="student epochs (preset: 12)")
    ap.add_argument("--teacher-epochs", type=int, default=None)
    ap.add_argument("--width", type=float, default=None, help="student width (preset: 0.25)")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.from_run:
        sessions = sorted(str(p) for p in (args.from_run / "data").glob("synth_*"))
        teacher = args.from_run / "teacher" / "teacher.pt"
        if not sessions or not teacher.is_file():
            raise SystemExit(f"{args.from_run}: no data/synth_* session or teacher/teacher.pt")
        session = sessions[0]
    else:
        from xmkd.reproduce import prepare_synthetic

        pipe = prepare_synthetic(out, args.preset, [], args.teacher_epochs, None, "cpu", False)
        session, teacher = pipe.sessions[0], out / "teacher" / "teacher.pt"
    times["data and teacher"] = time.perf_counter() - t0

    from xmkd.checkpoint import load_teacher

    _, meta = load_teacher(teacher)
    cmap = merged_map(list(meta.class_names))
    map_file = write_map(cmap, out / "merged.toml")
    print(f"teacher {teacher}: {len(meta.class_names)} classes; merged map {map_file}:")
    for action in cmap.actions:
        print(f"  {action.name:28s} <- {', '.join(action.teacher)}")

    results = {}
    for vocabulary, extra in (("original", []), ("merged", ["--classes", str(map_file)])):
        t = time.perf_counter()
        labels = out / f"labels_{vocabulary}.pt"
        print(f"\nxmkd label ({vocabulary} vocabulary):")
        run_cli(["label", "--teacher", str(teacher), "--sessions", session, "--out",
                 str(labels), "--quiet", *extra], quiet=False)  # fmt: skip
        times[f"labeling ({vocabulary})"] = time.perf_counter() - t
        t = time.perf_counter()
        run_dir = out / f"students_{vocabulary}"
        distill = ["distill", "--sessions", session, "--labels", str(labels), "--out",
                   str(run_dir), "--preset", "synthetic", "--students", "stgcn,stgcn",
                   "--val-split", "none", "--quiet"]  # fmt: skip
        if args.epochs:
            distill += ["--epochs", str(args.epochs)]
        if args.width:
            distill += ["--width", str(args.width)]
        if not (run_dir / "best.pt").is_file():
            print(f"xmkd distill ({vocabulary} labels) ...", flush=True)
            run_cli(distill)
        times[f"distillation ({vocabulary})"] = time.perf_counter() - t
        cache = load_labels(labels)
        results[vocabulary] = {
            "classes": len(cache.class_names),
            "teacher": cache.accuracy(),
            "test": test_scores(run_dir, session, out / f"eval_{vocabulary}"),
        }
    # the teacher's original labels counted right when they fall in the right merged action
    own = load_labels(out / "labels_original.pt")
    to_target = dataset_targets(own.class_names, cmap.names, cmap)
    known = own.targets >= 0
    pred = to_target[own.logits.argmax(dim=1).numpy()][known.numpy()]
    truth = to_target[own.targets.numpy()][known.numpy()]
    results["merged after"] = {
        "classes": len(cmap),
        "teacher": float((pred == truth).mean()),
        "test": merged_after(out / "students_original", session, cmap),
    }

    def pct(value: float | None) -> str:
        return f"{100 * value:.2f}" if value is not None else "-"

    rows = []
    label_of = {"original": "original (teacher's classes)",
                "merged after": "original students, merged after",
                "merged": "merged map (students trained on it)"}  # fmt: skip
    for key in ("original", "merged after", "merged"):
        r = results[key]
        test = r["test"]
        rows.append((label_of[key], str(r["classes"]), pct(r["teacher"]),
                     pct(test.get("student0_stgcn")), pct(test.get("student1_stgcn")),
                     pct(test.get("ensemble_mean")), pct(test["majority"])))  # fmt: skip
    print()
    table(("vocabulary", "classes", "teacher % (Student-Train)", "student0 %", "student1 %",
           "ensemble %", "majority class %"), rows)  # fmt: skip
    print()
    table(("stage", "seconds"), [(k, f"{v:.0f}") for k, v in times.items()])
    print(f"total {time.perf_counter() - t0:.0f} s; reports: eval_*/metrics.json in {out}")


if __name__ == "__main__":
    main_bench()
