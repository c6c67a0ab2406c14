"""The paper's experiments (Thoker & Gall, Tables 1-5) as one protocol, and the demo pipeline.

``reproduce`` runs, on the synthetic data set or on NTU RGB+D (60 or 120):

0. NTU only, from the dataset's own folders (``--ntu-root``): the ingestion, ``xmkd prepare-ntu``
   with the skeletons and the videos, into ``<out>/data/<dataset>``;
1. the teacher on Teacher-Train, its accuracy on Student-Train (the paper: 86%); on NTU
   ``xmkd teacher train --packed``;
2. the teacher's labels for Student-Train (``xmkd.train.label``; on NTU ``xmkd label --packed``);
3. per student architecture the runs of Tables 1-5: full supervision; full supervision with
   5-25% wrong labels (Table 1); KL with tau in 1..50 (Table 2); KL tau = 10 with K = 1..4
   students with and without the mutual term, ensembles by mean and max (Table 3); CE vs KL,
   alone and with mutual learning (Tables 4, 5);
4. a Markdown report (``report.md``, data in ``results.json``) with our numbers beside the
   paper's.

Each run trains on Student-Train and is evaluated once, after its last epoch, on Test (no model
selection on the test set). Runs are cached in ``<out>/runs/<key>/result.json``: an interrupted
reproduction continues where it stopped. The NTU stages 0-2 are the README's commands, run
through the command line's own parser (so they take the same options and checks); each is
resumable by itself and skipped once finished, and ``<out>/stages.json`` records the command of
each: a stage asked again with other settings is refused rather than overwritten.

``--seeds N`` repeats every run with N seeds and reports mean and standard deviation (the
synthetic students vary by a few points between seeds, so differences below ~4 points need
seeds; see field facts). The numbers are reported as they come out, in whatever order: nothing
here is tuned to match the paper.
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

#: NTU datasets and the x-sub benchmark whose protocol the paper follows
NTU_DATASETS = {"ntu60": "xsub60", "ntu120": "xsub120"}
DATASETS = ("synthetic", *NTU_DATASETS)
#: NTU's folders in the download (as they unpack), under --ntu-root
NTU_SKELETON_DIR = "nturgb+d_skeletons"
NTU_RGB_DIR = "nturgb+d_rgb"
#: the NTU stages before the students, in order (--stop-after)
NTU_STAGES = ("ingest", "teacher", "labels")

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
    #: NTU: the teacher labels (an `xmkd label` file); without them the teacher is trained
    labels: str | None = None
    #: NTU: the download's folder (nturgb+d_skeletons/ and nturgb+d_rgb/ in it)
    ntu_root: str | None = None
    #: NTU teacher: its modality and ImageNet weights (torchvision ResNet state_dict file)
    teacher_modality: str = "rgbdiff"
    teacher_pretrained: str | None = None
    #: NTU ingestion worker processes (None: every core)
    ingest_workers: int | None = None
    #: NTU: stop after this stage ("ingest", "teacher", "labels"); None: run everything
    stop_after: str | None = None
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
    preset = "paper" if options.dataset in NTU_DATASETS else "synthetic"
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
    commands: Sequence[str] = (),
) -> str:
    """Our numbers beside the paper's, table by table (after the stages' ``commands``)."""
    ens = "ensemble_mean"
    lines = [
        "# Reproduction of Thoker & Gall, Tables 1-5",
        "",
        f"Dataset: **{options.dataset}**"
        + (f" (preset {options.synth_preset})" if options.dataset == "synthetic" else "")
        + f"; seeds: {options.seeds}; quick: {options.quick}. "
        f"Accuracy in % on Test after the last epoch; ours = mean ± std over seeds. "
        + _comparability(options),
        "",
    ]
    for k, v in facts.items():
        lines.append(f"- {k}: {v}")
    if commands:
        lines += ["", "## Stages", "", "```"] + list(commands) + ["```"]
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


def _comparability(options: ReproduceOptions) -> str:
    """What the paper's column means beside ours, for the report."""
    if options.dataset == "ntu60":
        note = "The paper's numbers are NTU RGB+D 60 cross-subject, as ours."
        if options.quick:
            note += " --quick trains 1 epoch of narrow models: far below the paper by design."
        return note
    if options.dataset == "ntu120":
        return (
            "The paper's numbers are NTU RGB+D 60 cross-subject (it reports none on NTU-120); "
            "ours are NTU-120 cross-subject: a harder task, compare the ordering."
        )
    return (
        "The paper's numbers are NTU RGB+D 60 cross-subject; synthetic numbers are not "
        "comparable in absolute terms, only in their ordering."
    )


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
    #: NTU: the packed folder the students read
    packed: str | None = None
    #: NTU: the command of each stage, as run or as cached ("xmkd ..."), for the report
    commands: list[str] = field(default_factory=list)


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
    from xmkd.checkpoint import load_teacher
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
    done = _teacher_finished(teacher_ckpt)
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


def _teacher_finished(ckpt: Path) -> bool:
    """The teacher checkpoint exists and its training reached the end (the trainer writes the
    Student-Train accuracy after the last epoch)."""
    from xmkd.checkpoint import load_checkpoint

    return ckpt.is_file() and "student_train_accuracy" in (
        load_checkpoint(ckpt, kind="teacher").get("extra") or {}
    )


def ntu_folders(root: str | Path) -> tuple[Path, Path]:
    """The skeleton and video folders of an NTU download (``nturgb+d_skeletons``,
    ``nturgb+d_rgb``) under ``root``; a missing one is one sentence."""
    root = Path(root)
    skeletons, rgb = root / NTU_SKELETON_DIR, root / NTU_RGB_DIR
    missing = [p.name for p in (skeletons, rgb) if not p.is_dir()]
    if missing:
        raise XmkdError(
            f"--ntu-root {root}: has no {' and no '.join(missing)} folder; unpack NTU's "
            f"skeleton and RGB archives there (they create {NTU_SKELETON_DIR}/ and {NTU_RGB_DIR}/)"
        )
    return skeletons, rgb


def _distributed() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


class _Stages:
    """The NTU stages' commands, recorded in ``<out>/stages.json``: a stage started with one
    command line and asked again with another is refused (its outputs were made by the first)."""

    def __init__(self, out: Path, say: Callable[[str], None]):
        self.path = out / "stages.json"
        self.say = say
        try:
            self.recorded: dict[str, list[str]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.recorded = {}
        except (OSError, ValueError) as exc:
            raise XmkdError(f"{self.path}: unreadable ({exc}); move it away to start over") from exc
        self.commands: list[str] = []
        self.facts: dict[str, str] = {}

    def run(
        self,
        name: str,
        argv: list[str],
        done: Callable[[], bool],
        compare: int,
        main_only: bool = False,
    ) -> None:
        """Run ``xmkd argv`` unless ``done()``; the first ``compare`` arguments must match the
        recorded command of the stage (the rest, such as --resume or --quiet, may change).
        ``main_only``: under torchrun rank 0 runs it while the others wait (a command that is
        not distributed itself, such as ``xmkd label``, would otherwise run once per rank)."""
        from xmkd.recordings import atomic_write_text

        shown = "xmkd " + " ".join(argv)
        self.commands.append(shown)
        before = self.recorded.get(name)
        if before is not None and before[:compare] != argv[:compare]:
            raise XmkdError(
                f"{self.path}: the {name} stage was started as `xmkd {' '.join(before)}`, now "
                f"asked as `{shown}`; use another --out, or the same settings"
            )
        if done():
            self.facts[f"{name} stage"] = "cached"
            return
        self.say(f"[{name}] {shown}")
        if before is None and _is_main():
            self.recorded[name] = argv
            atomic_write_text(self.path, json.dumps(self.recorded, indent=1) + "\n")
        t0 = time.perf_counter()
        if main_only and _distributed():
            from xmkd.train import ddp

            ctx = ddp.init_distributed(argv[argv.index("--device") + 1])
            if ctx.is_main:
                _run_xmkd(argv)
            ddp.barrier(ctx)
        else:
            _run_xmkd(argv)
        self.facts[f"{name} stage"] = f"{time.perf_counter() - t0:.0f} s"


def _run_xmkd(argv: list[str]) -> None:
    """Run one ``xmkd`` command line in this process, through the CLI's own parser and checks."""
    from xmkd.cli import build_parser

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the refused option in one line
        raise XmkdError(f"`xmkd {' '.join(argv)}` was refused (exit code {exc.code})") from None
    code = int(args.func(args) or 0)
    if code:
        raise XmkdError(f"`xmkd {' '.join(argv)}` failed with exit code {code}")


def prepare_ntu(
    options: ReproduceOptions, console: bool = True, say: Callable[[str], None] = print
) -> Pipeline:
    """NTU's stages before the students: ingest (from ``options.ntu_root``), teacher, labels;
    each skipped when finished. Returns the pipeline the students run on."""
    from xmkd.ntu.pack import MANIFEST
    from xmkd.train.label import load_labels

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    benchmark = NTU_DATASETS[options.dataset]
    stages = _Stages(out, say)
    quiet = [] if console else ["--quiet"]
    device = ["--device", options.device]
    packed = Path(options.packed) if options.packed else out / "data" / options.dataset
    if options.ntu_root:
        if options.packed:
            raise XmkdError("give --ntu-root (reproduce ingests it) or --packed, not both")
        skeletons, rgb = ntu_folders(options.ntu_root)
        argv = ["prepare-ntu", "--skeletons", str(skeletons), "--rgb", str(rgb)]
        argv += ["--benchmark", benchmark, "--out", str(packed)]
        if options.teacher_modality == "flow":  # DIS: the CPU default (TV-L1 is ~1 frame/s)
            argv += ["--flow", "dis"]
        if options.quick:  # the CPU-sized teacher reads 64-pixel crops
            argv += ["--short-side", "64"]
        settings = len(argv)
        if options.ingest_workers:
            argv += ["--workers", str(options.ingest_workers)]
        if not console:
            argv += ["--no-progress"]

        def ingested() -> bool:
            return (packed / MANIFEST).is_file()

        if _distributed() and not ingested():
            # hours of decoding on rank 0 would outlast the other ranks' wait at a barrier
            raise XmkdError(
                "the ingestion runs on CPU cores, once: run it first without torchrun "
                "(xmkd reproduce ... --stop-after ingest), then start torchrun"
            )
        stages.run("ingest", argv, ingested, settings)
    elif not options.packed:
        raise XmkdError(
            f"{options.dataset} needs the dataset: --ntu-root DIR (the download, with "
            f"{NTU_SKELETON_DIR}/ and {NTU_RGB_DIR}/) or --packed DIR (xmkd prepare-ntu)"
        )
    if options.stop_after == "ingest":
        return Pipeline(out, [], [], None, None, stages.facts, str(packed), stages.commands)
    if options.labels:
        labels_path = Path(options.labels)
    else:
        teacher_dir = out / "teacher"
        ckpt = teacher_dir / "teacher.pt"
        argv = ["teacher", "train", "--packed", str(packed), "--out", str(teacher_dir)]
        argv += ["--benchmark", benchmark, "--modality", options.teacher_modality]
        if options.quick:  # CPU-sized: what the tests run on the small NTU-like tree
            argv += ["--preset", "synthetic", "--epochs", str(options.teacher_epochs or 1)]
            argv += ["--width", str(options.teacher_width or 0.125)]
        else:
            argv += ["--preset", "paper"]
            if options.teacher_epochs:
                argv += ["--epochs", str(options.teacher_epochs)]
            if options.teacher_width:
                argv += ["--width", str(options.teacher_width)]
        if options.teacher_pretrained:
            argv += ["--pretrained", str(options.teacher_pretrained)]
        settings = len(argv)
        argv += device + quiet + (["--resume"] if ckpt.is_file() else [])
        stages.run("teacher", argv, lambda: _teacher_finished(ckpt), settings)
        if options.stop_after == "teacher":
            return Pipeline(out, [], [], None, None, stages.facts, str(packed), stages.commands)
        labels_path = out / "labels.pt"
        argv = ["label", "--teacher", str(ckpt), "--packed", str(packed)]
        argv += ["--benchmark", benchmark, "--out", str(labels_path)]
        settings = len(argv)

        def labeled() -> bool:  # every Student-Train sample (a partial cache is completed)
            from xmkd.ntu.pack import PackedNTU

            if not labels_path.is_file():
                return False
            return set(PackedNTU(packed, "student_train").names) <= set(
                load_labels(labels_path).names
            )

        stages.run("labels", argv + device + quiet, labeled, settings, main_only=True)
    labels = load_labels(labels_path)
    if labels.extra.get("class_map") or labels.extra.get("background") or labels.no_label:
        # the paper's tables compare students in the data's own classes on every Student-Train
        # clip; a mapped vocabulary or clips left out would compare something else
        raise XmkdError(
            f"{labels_path}: was labeled through a class map (or leaves clips without a label); "
            "xmkd reproduce runs the paper's protocol in the data's own classes: label without "
            "--classes/--actions/--min-confidence, or train on this file with xmkd distill"
        )
    facts = dict(stages.facts)
    return Pipeline(
        out,
        [],
        labels.class_names,
        labels.accuracy(),
        labels_path,
        facts,
        str(packed),
        stages.commands,
    )


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
) -> Path | None:
    """Run the protocol; returns the path of the Markdown report (None when ``stop_after``
    ended it before the students)."""
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
    elif options.dataset in NTU_DATASETS:
        pipeline = prepare_ntu(options, console, say)
        if options.stop_after in NTU_STAGES:
            say(f"stopped after the {options.stop_after} stage, as asked (--stop-after)")
            return None
    else:
        raise XmkdError(f"unknown dataset {options.dataset!r}; choose {', '.join(DATASETS)}")
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
            res = run_students(pipeline, run, cfg, pipeline.packed, console, cache)
            if _is_main():
                path.write_text(json.dumps(res, indent=1))
            results.setdefault(run.key, []).append(res)
            shown = ", ".join(f"{k} {100 * v:.1f}%" for k, v in res["test"].items())
            say(f"    {shown} ({res['seconds']:.0f} s)")
    facts = dict(pipeline.facts)
    facts["total time"] = f"{time.perf_counter() - t_start:.0f} s"
    report = markdown_report(results, pipeline.teacher_accuracy, options, facts, pipeline.commands)
    if not _is_main():  # under torchrun: rank 0 writes the report
        return None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"teacher_student_train": pipeline.teacher_accuracy, "runs": results}, indent=1)
    )
    path = out / "report.md"
    path.write_text(report)
    return path
