"""The paper's experiments (Thoker & Gall, Tables 1-5) as one protocol, and the demo pipeline.

``reproduce`` runs, on the synthetic data set or on NTU RGB+D:

1. the teacher on Teacher-Train, its accuracy on Student-Train (the paper: 86%; synthetic data
   only: NTU sessions of videos are the user's to provide, see ``xmkd teacher train``);
2. the teacher's labels for Student-Train (``xmkd.train.label``);
3. per student architecture the runs of Tables 1-5: full supervision; full supervision with
   5-25% wrong labels (Table 1); KL with tau in 1..50 (Table 2); KL tau = 10 with K = 1..4
   students with and without the mutual term, ensembles by mean and max (Table 3); CE vs KL,
   alone and with mutual learning (Tables 4, 5);
4. a Markdown report (``report.md``, data in ``results.json``) with our numbers beside the
   paper's.

Each run trains on Student-Train and is evaluated once, after its last epoch, on Test (no model
selection on the test set). Runs are cached in ``<out>/runs/<key>/result.json``: an interrupted
reproduction continues where it stopped. ``--seeds N`` repeats every run with N seeds and reports
mean and standard deviation (the synthetic students vary by a few points between seeds, so
differences below ~4 points need seeds; see field facts). The numbers are reported as they come
out, in whatever order: nothing here is tuned to match the paper.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmkd.config import DistillConfig, distill_preset, teacher_preset
from xmkd.errors import XmkdError

#: The paper's numbers (accuracy %, NTU-60 cross-subject, Student-Train -> Test).
PAPER: dict[str, Any] = {
    "teacher_student_train": 86.0,
    "table1": {0: 78.50, 5: 73.20, 10: 72.58, 14: 71.51, 20: 69.70, 25: 68.01},
    "table2": {1: 51.05, 2: 52.00, 5: 70.80, 10: 71.17, 20: 68.90, 50: 64.00},
    # (K, method, run key, paper max, paper average)
    "table3": [
        (1, "Full supervision", "stgcn_full", None, 78.50),
        (1, "Teacher-Student", "stgcn_kl10", None, 71.17),
        (2, "Ensemble without mutual", "stgcn_kl10_k2_nomutual", 71.93, 72.32),
        (2, "Mutual Learning", "stgcn_kl10_k2", 73.20, 73.60),
        (3, "Mutual Learning", "stgcn_kl10_k3", 73.60, 74.22),
        (4, "Mutual Learning", "stgcn_kl10_k4", 73.30, 73.50),
    ],
    # (loss, K, run key, paper)
    "table4": [
        ("Full supervision", None, "stgcn_full", 78.50),
        ("KL", 1, "stgcn_kl10", 71.17),
        ("Cross-entropy", 1, "stgcn_ce", 74.91),
        ("KL + Mutual", 2, "stgcn_kl10_k2", 73.60),
        ("Cross-entropy + Mutual", 2, "stgcn_ce_k2", 77.83),
    ],
    "table5": [
        ("Full supervision", None, "hcn_full", 80.60),
        ("KL (tau = 1)", 1, "hcn_kl1", 74.40),
        ("KL (tau = 2)", 1, "hcn_kl2", 74.90),
        ("Cross-entropy", 1, "hcn_ce", 77.40),
        ("Cross-entropy + Mutual", 2, "hcn_ce_k2", 79.00),
        ("Cross-entropy + Mutual", 3, "hcn_ce_k3", 79.50),
    ],
}

NOISE_LEVELS = (5, 10, 14, 20, 25)
TAUS = (1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class Run:
    """One training run of the protocol: ``k`` students of ``arch`` with a loss setting."""

    key: str
    arch: str
    k: int = 1
    supervision: str = "ce"
    mutual: bool = True
    tau: float = 10.0
    noise: float = 0.0


def protocol_runs(quick: bool = False) -> list[Run]:
    """Every run Tables 1-5 need (each listed once; tables share runs)."""
    runs = [Run("stgcn_full", "stgcn", supervision="full", mutual=False)]
    runs += [
        Run(f"stgcn_noise{n}", "stgcn", supervision="full", mutual=False, noise=n / 100)
        for n in NOISE_LEVELS
    ]
    runs += [Run(f"stgcn_kl{t}", "stgcn", supervision="kl", tau=t) for t in TAUS]
    runs += [
        Run("stgcn_kl10_k2_nomutual", "stgcn", k=2, supervision="kl", mutual=False),
        Run("stgcn_kl10_k2", "stgcn", k=2, supervision="kl"),
        Run("stgcn_kl10_k3", "stgcn", k=3, supervision="kl"),
        Run("stgcn_kl10_k4", "stgcn", k=4, supervision="kl"),
        Run("stgcn_ce", "stgcn"),
        Run("stgcn_ce_k2", "stgcn", k=2),
        Run("hcn_full", "hcn", supervision="full", mutual=False),
        Run("hcn_kl1", "hcn", supervision="kl", tau=1),
        Run("hcn_kl2", "hcn", supervision="kl", tau=2),
        Run("hcn_ce", "hcn"),
        Run("hcn_ce_k2", "hcn", k=2),
        Run("hcn_ce_k3", "hcn", k=3),
    ]
    if quick:
        keep = {
            "stgcn_full",
            "stgcn_noise14",
            "stgcn_kl10",
            "stgcn_kl10_k2_nomutual",
            "stgcn_ce",
            "stgcn_ce_k2",
            "hcn_ce",
        }
        runs = [r for r in runs if r.key in keep]
    return runs


@dataclass
class ReproduceOptions:
    """What `xmkd reproduce` runs; the defaults are the synthetic protocol on 2 CPU cores."""

    dataset: str = "synthetic"
    out: str = "runs/reproduce"
    #: synthetic: generate with this preset ("default" or "tiny") unless --sessions are given
    synth_preset: str = "default"
    sessions: list[str] = field(default_factory=list)
    packed: str | None = None
    #: NTU: the teacher labels (an `xmkd label` file), since NTU videos are not packed
    labels: str | None = None
    quick: bool = False
    seeds: int = 1
    #: student/teacher epochs; None: the preset's (synthetic) or the paper's (ntu60)
    epochs: int | None = None
    teacher_epochs: int | None = None
    student_width: float | None = None
    teacher_width: float | None = None
    device: str = "auto"
    only: list[str] = field(default_factory=list)


def run_config(run: Run, options: ReproduceOptions, seed: int) -> DistillConfig:
    """The DistillConfig of one protocol run."""
    students = [run.arch] * run.k
    preset = "paper" if options.dataset == "ntu60" else "synthetic"
    cfg = distill_preset(preset, students)
    changes: dict[str, Any] = {
        "supervision": run.supervision,
        "mutual": run.mutual,
        "kd_tau": run.tau,
        "noise": run.noise,
        "noise_seed": seed,
        "seed": seed,
        "device": options.device,
    }
    epochs = options.epochs or (1 if options.quick else None)
    if epochs:
        changes["epochs"] = epochs
    changes["eval_every"] = epochs or cfg.resolved_epochs()  # evaluate once, at the end
    width = options.student_width or (0.125 if options.quick else None)
    if width:
        changes["student_kwargs"] = [{**cfg.kwargs_for(i), "width": width} for i in range(run.k)]
    return dataclasses.replace(cfg, **changes)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    if len(values) == 1:
        return values[0], None
    return statistics.mean(values), statistics.stdev(values)


def _fmt(values: Sequence[float] | None) -> str:
    if not values:
        return "-"
    mean, std = _mean_std([100 * v for v in values])
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _paper(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def results_table(results: dict[str, list[dict[str, Any]]], key: str, metric: str) -> list[float]:
    """Per-seed values of ``metric`` (student0, ensemble_mean, ensemble_max) for run ``key``."""
    out = []
    for r in results.get(key, []):
        acc = r["test"]
        out.append(acc.get(metric, acc["student0"]))
    return out


def markdown_report(
    results: dict[str, list[dict[str, Any]]],
    teacher_acc: float | None,
    options: ReproduceOptions,
    facts: dict[str, Any],
) -> str:
    """Our numbers beside the paper's, table by table."""
    ens = "ensemble_mean"
    lines = [
        "# Reproduction of Thoker & Gall, Tables 1-5",
        "",
        f"Dataset: **{options.dataset}**"
        + (f" (preset {options.synth_preset})" if options.dataset == "synthetic" else "")
        + f"; seeds: {options.seeds}; quick: {options.quick}. "
        f"Accuracy in % on Test after the last epoch; ours = mean ± std over seeds. "
        f"The paper's numbers are NTU RGB+D 60 cross-subject; synthetic numbers are not "
        f"comparable in absolute terms, only in their ordering.",
        "",
    ]
    for k, v in facts.items():
        lines.append(f"- {k}: {v}")
    lines += [
        "",
        "## Teacher",
        "",
        "| | ours | paper |",
        "|---|---|---|",
        f"| Teacher accuracy on Student-Train | "
        f"{'-' if teacher_acc is None else f'{100 * teacher_acc:.2f}'} | "
        f"{PAPER['teacher_student_train']:.2f} |",
        "",
        "## Table 1: ST-GCN, full supervision with wrong labels",
        "",
        "| Noise % | ours | paper |",
        "|---|---|---|",
    ]
    for n, paper in PAPER["table1"].items():
        key = "stgcn_full" if n == 0 else f"stgcn_noise{n}"
        lines.append(f"| {n} | {_fmt(results_table(results, key, 'student0'))} | {paper:.2f} |")
    lines += [
        "",
        "## Table 2: ST-GCN, KL loss with temperature tau",
        "",
        "| tau | ours | paper |",
        "|---|---|---|",
    ]
    for t, paper in PAPER["table2"].items():
        lines.append(
            f"| {t} | {_fmt(results_table(results, f'stgcn_kl{t}', 'student0'))} | {paper:.2f} |"
        )
    lines += [
        "",
        "## Table 3: ST-GCN, mutual learning and K (KL, tau = 10)",
        "",
        "| K | Method | ours max | ours average | paper max | paper average |",
        "|---|---|---|---|---|---|",
    ]
    for k, method, key, p_max, p_avg in PAPER["table3"]:
        ours_max = _fmt(results_table(results, key, "ensemble_max")) if k > 1 else "-"
        ours_avg = _fmt(results_table(results, key, ens))
        lines.append(
            f"| {k} | {method} | {ours_max} | {ours_avg} | {_paper(p_max)} | {_paper(p_avg)} |"
        )
    for title, table in (
        ("## Table 4: ST-GCN, cross-entropy vs KL (ensembles averaged)", "table4"),
        ("## Table 5: HCN, loss functions and K (ensembles averaged)", "table5"),
    ):
        lines += ["", title, "", "| Loss | K | ours | paper |", "|---|---|---|---|"]
        for loss, k, key, paper in PAPER[table]:
            lines.append(
                f"| {loss} | {'-' if k is None else k} | "
                f"{_fmt(results_table(results, key, ens))} | {paper:.2f} |"
            )
    lines += ["", "## Every run", "", "| run | per-seed test accuracy (student0 / ensemble) | s |"]
    lines.append("|---|---|---|")
    for key, seeds in results.items():
        accs = "; ".join(
            f"{100 * r['test']['student0']:.1f}"
            + (f" / {100 * r['test']['ensemble_mean']:.1f}" if "ensemble_mean" in r["test"] else "")
            for r in seeds
        )
        secs = sum(r.get("seconds", 0.0) for r in seeds)
        lines.append(f"| {key} | {accs} | {secs:.0f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the pipeline
@dataclass
class Pipeline:
    """Data, teacher and labels shared by the runs (also what `xmkd demo` drives)."""

    out: Path
    sessions: list[str]
    class_names: list[str]
    teacher_accuracy: float | None
    labels_path: Path | None
    facts: dict[str, Any] = field(default_factory=dict)


def prepare_synthetic(
    out: Path,
    synth_preset: str,
    sessions: Sequence[str],
    teacher_epochs: int | None,
    teacher_width: float | None,
    device: str,
    quick: bool,
    console: bool = True,
    say: Callable[[str], None] = print,
) -> Pipeline:
    """Generate (or reuse) synthetic sessions, train the teacher, label Student-Train."""
    from xmkd.checkpoint import load_checkpoint, load_teacher
    from xmkd.models.tsn import TSNInputSpec
    from xmkd.train.inputs import TeacherClips, class_names_of, video_source
    from xmkd.train.label import label_dataset
    from xmkd.train.teacher import build_teacher, train_teacher

    facts: dict[str, Any] = {}
    out.mkdir(parents=True, exist_ok=True)
    if not sessions:
        from xmkd.recordings import SESSION_FILE
        from xmkd.synth import generate, preset

        session = out / "data" / f"synth_{synth_preset}"
        if not (session / SESSION_FILE).is_file():
            say(f"generating synthetic data ({synth_preset} preset) in {session} ...")
            t0 = time.perf_counter()
            cfg = preset(synth_preset, flow=False)
            summary = generate(cfg, session, workers=_cpu_workers())
            facts["synthetic data"] = f"{summary.clips} clips in {time.perf_counter() - t0:.0f} s"
        sessions = [str(session)]
    teacher_dir = out / "teacher"
    teacher_ckpt = teacher_dir / "teacher.pt"
    t0 = time.perf_counter()
    cfg = teacher_preset("synthetic", "rgbdiff", device=device)
    if teacher_epochs or quick:
        cfg = dataclasses.replace(cfg, epochs=teacher_epochs or 1)
    if teacher_width or quick:
        cfg = dataclasses.replace(
            cfg, model_kwargs={**cfg.model_kwargs, "width": teacher_width or 0.125}
        )
    done = teacher_ckpt.is_file() and "student_train_accuracy" in (
        load_checkpoint(teacher_ckpt, kind="teacher").get("extra") or {}
    )
    raw_train = video_source(sessions, cfg.modality, "teacher_train")
    class_names = class_names_of(raw_train)
    if not done:
        say(f"training the teacher (TSN {cfg.modality}, {cfg.epochs} epochs) ...")
        model = build_teacher(cfg, len(class_names))
        spec = cfg.input_spec(model)
        raw_eval = video_source(sessions, cfg.modality, "student_train", labeled_only=True)
        resume = teacher_ckpt.is_file()
        train_teacher(
            cfg,
            TeacherClips(raw_train, spec, train=True, seed=cfg.seed),
            class_names,
            spec,
            teacher_dir,
            eval_set=TeacherClips(raw_eval, spec, train=False),
            resume=resume,
            console=console,
            model=model,
        )
        facts["teacher training"] = f"{time.perf_counter() - t0:.0f} s"
    teacher, meta = load_teacher(teacher_ckpt)
    accuracy = meta.extra.get("student_train_accuracy")
    labels_path = out / "labels.pt"
    t0 = time.perf_counter()
    say(f"labeling Student-Train with the teacher into {labels_path} ...")
    raw = video_source(sessions, meta.modality, "student_train")
    data = TeacherClips(raw, TSNInputSpec.from_dict(meta.input_spec), train=False)
    from xmkd.config import resolve_device

    _, lab = label_dataset(
        teacher,
        data,
        data.names,
        labels_path,
        meta.class_names,
        meta.modality,
        str(teacher_ckpt),
        batch_size=32,
        device=resolve_device(device),
        progress=console,
    )
    if lab["labeled"]:
        facts["teacher labeling"] = (
            f"{lab['labeled']} clips at {lab['samples_per_s']} clips/s "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    return Pipeline(out, list(sessions), meta.class_names, accuracy, labels_path, facts)


def _cpu_workers() -> int:
    import os

    return max(1, min(8, os.cpu_count() or 1))


def run_students(
    pipeline: Pipeline,
    run: Run,
    cfg: DistillConfig,
    packed: str | None = None,
    console: bool = True,
    cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one protocol run and evaluate it on Test (after the last epoch)."""
    from xmkd.evaluate import predict, score_students
    from xmkd.train.distill import train_students
    from xmkd.train.inputs import StudentWindows, skeleton_source
    from xmkd.train.label import load_labels

    cache = cache if cache is not None else {}
    if "train" not in cache:
        cache["train"] = skeleton_source(pipeline.sessions, packed, "student_train")
        cache["test"] = skeleton_source(pipeline.sessions, packed, "test", labeled_only=True)
    spec = cfg.spec()
    train = StudentWindows(cache["train"], spec, train=True, seed=cfg.seed)
    test = StudentWindows(cache["test"], spec, train=False)
    teacher_logits = None
    if cfg.supervision != "full":
        if pipeline.labels_path is None:
            raise XmkdError("teacher runs need teacher labels (an `xmkd label` file)")
        labels = cache.get("labels") or load_labels(pipeline.labels_path)
        cache["labels"] = labels
        teacher_logits = labels.lookup(train.names, str(pipeline.labels_path))
    run_dir = pipeline.out / "runs" / f"{run.key}_seed{cfg.seed}"
    t0 = time.perf_counter()
    result = train_students(
        cfg,
        train,
        pipeline.class_names,
        spec,
        run_dir,
        teacher_logits=teacher_logits,
        labels=train.labels if cfg.supervision == "full" else None,
        val_set=None,
        console=console,
    )
    seconds = time.perf_counter() - t0
    from xmkd.checkpoint import load_students
    from xmkd.config import resolve_device

    device = resolve_device(cfg.device)
    models, _ = load_students(result.last)
    models = [m.to(device) for m in models]
    logits, targets, _ = predict(models, test, batch_size=64, device=device)
    report = score_students(logits, targets, pipeline.class_names)
    return {
        "key": run.key,
        "seed": cfg.seed,
        "test": {m.name: m.top1 for m in report.all()},
        "seconds": round(seconds, 1),
        "run_dir": str(run_dir),
        "config": dataclasses.asdict(run),
        "distill_config": _as_json(dataclasses.asdict(cfg)),
    }


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def _cached_result(path: Path, cfg: DistillConfig) -> dict[str, Any] | None:
    """The finished run's result if ``path`` holds one trained with exactly ``cfg``; a result
    of other settings (another --epochs or --student-width) or an unreadable one is None."""
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if cached.get("distill_config") != _as_json(dataclasses.asdict(cfg)):
        return None
    return cached


def reproduce(
    options: ReproduceOptions, console: bool = True, say: Callable[[str], None] = print
) -> Path:
    """Run the protocol; returns the path of the Markdown report."""
    t_start = time.perf_counter()
    out = Path(options.out)
    if options.dataset == "synthetic":
        pipeline = prepare_synthetic(
            out,
            "tiny" if options.quick and not options.sessions else options.synth_preset,
            options.sessions,
            options.teacher_epochs,
            options.teacher_width,
            options.device,
            options.quick,
            console,
            say,
        )
    elif options.dataset == "ntu60":
        if not options.packed:
            raise XmkdError("ntu60 needs the packed skeletons: --packed DIR (xmkd prepare-ntu)")
        if not options.labels:
            raise XmkdError(
                "ntu60 needs the teacher's labels of Student-Train: train the teacher on the NTU "
                "videos (xmkd teacher train) and pass `xmkd label`'s output with --labels"
            )
        from xmkd.train.label import load_labels

        labels = load_labels(options.labels)
        acc = labels.accuracy()
        pipeline = Pipeline(out, [], labels.class_names, acc, Path(options.labels))
    else:
        raise XmkdError(f"unknown dataset {options.dataset!r}; choose synthetic or ntu60")
    runs = protocol_runs(options.quick)
    if options.only:
        runs = [r for r in runs if r.key in options.only]
    results: dict[str, list[dict[str, Any]]] = {}
    cache: dict[str, Any] = {}
    for n, run in enumerate(runs, start=1):
        for seed in range(options.seeds):
            path = out / "runs" / f"{run.key}_seed{seed}" / "result.json"
            cfg = run_config(run, options, seed)
            cached = _cached_result(path, cfg)
            if cached is not None:
                results.setdefault(run.key, []).append(cached)
                continue
            if path.is_file():
                say(f"{run.key} (seed {seed}): settings changed since its cached result")
            say(f"[{n}/{len(runs)}] {run.key} (seed {seed}) ...")
            res = run_students(pipeline, run, cfg, options.packed, console, cache)
            path.write_text(json.dumps(res, indent=1))
            results.setdefault(run.key, []).append(res)
            shown = ", ".join(f"{k} {100 * v:.1f}%" for k, v in res["test"].items())
            say(f"    {shown} ({res['seconds']:.0f} s)")
    facts = dict(pipeline.facts)
    facts["total time"] = f"{time.perf_counter() - t_start:.0f} s"
    report = markdown_report(results, pipeline.teacher_accuracy, options, facts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"teacher_student_train": pipeline.teacher_accuracy, "runs": results}, indent=1)
    )
    path = out / "report.md"
    path.write_text(report)
    return path
