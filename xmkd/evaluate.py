"""Evaluation of students and their ensemble: top-1/top-k, per-class accuracy, confusion matrices.

The ensemble combines the students' class probabilities (softmax at tau = 1) by their mean (the
paper's default, Table 3 "Average") or their per-class maximum (Table 3 "Max"); the predicted
class is the argmax of the combined vector. ``xmkd eval`` writes, per model and rule,
``confusion_<name>.csv`` / ``.png`` and one ``metrics.json`` with everything.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ENSEMBLE_RULES = ("mean", "max")


def ensemble_probs(probs: Sequence[np.ndarray] | np.ndarray, rule: str = "mean") -> np.ndarray:
    """Combine K students' probabilities (K, N, C) by their mean or per-class maximum."""
    stacked = np.stack(list(probs)) if not isinstance(probs, np.ndarray) else probs
    if rule == "mean":
        return stacked.mean(axis=0)
    if rule == "max":
        return stacked.max(axis=0)
    raise ValueError(f"ensemble rule must be one of {ENSEMBLE_RULES}, got {rule!r}")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@torch.no_grad()
def predict(
    models: Sequence[nn.Module],
    dataset: Dataset,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "eval",
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Run every model over ``dataset`` (items ``(x, target, index)``) in eval mode.

    Returns (per-model logits (N, C) float32 in dataset order, targets (N,), indices (N,)); the
    models' train/eval mode is restored afterwards. Each batch is loaded once for all models.
    """
    from tqdm import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    outs: list[list[np.ndarray]] = [[] for _ in models]
    targets, indices = [], []
    try:
        for x, target, index in tqdm(loader, desc=desc, disable=not progress, leave=False):
            x = x.to(device, non_blocking=True)
            for i, m in enumerate(models):
                outs[i].append(m(x).float().cpu().numpy())
            targets.append(np.asarray(target).reshape(-1))
            indices.append(np.asarray(index).reshape(-1))
    finally:
        for m, mode in zip(models, was_training):
            m.train(mode)
    if not targets:
        raise ValueError("the evaluation set is empty")
    logits = [np.concatenate(o) for o in outs]
    return logits, np.concatenate(targets).astype(np.int64), np.concatenate(indices)


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


@dataclass
class Metrics:
    """Accuracy of one classifier (a student or an ensemble rule) on labeled samples."""

    name: str
    top1: float
    topk: float
    k: int
    per_class: list[float | None]
    confusion: np.ndarray
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "top1": self.top1,
            f"top{self.k}": self.topk,
            "per_class": self.per_class,
            "confusion": self.confusion.tolist(),
            "count": self.count,
        }


def compute_metrics(name: str, scores: np.ndarray, labels: np.ndarray, top_k: int = 5) -> Metrics:
    """Top-1, top-k, per-class accuracy (None for a class without samples), confusion matrix."""
    num_classes = scores.shape[1]
    pred = scores.argmax(axis=1)
    cm = confusion_matrix(pred, labels, num_classes)
    support = cm.sum(axis=1)
    per_class = [float(cm[c, c] / support[c]) if support[c] else None for c in range(num_classes)]
    return Metrics(
        name=name,
        top1=float((pred == labels).mean()),
        topk=topk_accuracy(scores, labels, top_k),
        k=min(top_k, num_classes),
        per_class=per_class,
        confusion=cm,
        count=len(labels),
    )


@dataclass
class EvalReport:
    """Metrics of each student and of each ensemble rule."""

    students: list[Metrics]
    ensembles: dict[str, Metrics] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    def all(self) -> list[Metrics]:
        return list(self.students) + list(self.ensembles.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": self.class_names,
            "students": [m.to_dict() for m in self.students],
            "ensembles": {rule: m.to_dict() for rule, m in self.ensembles.items()},
        }


def score_students(
    logits: Sequence[np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    ensembles: Sequence[str] = ENSEMBLE_RULES,
    top_k: int = 5,
    names: Sequence[str] | None = None,
) -> EvalReport:
    """Metrics from precomputed logits; samples with a negative label (unlabeled) are left out."""
    keep = labels >= 0
    if not keep.any():
        raise ValueError("no labeled samples to evaluate (every target is negative/unknown)")
    labels = labels[keep]
    probs = [softmax(z[keep].astype(np.float64)) for z in logits]
    names = list(names) if names else [f"student{i}" for i in range(len(logits))]
    students = [compute_metrics(n, p, labels, top_k) for n, p in zip(names, probs)]
    combined = {}
    if len(probs) > 1:
        for rule in ensembles:
            combined[rule] = compute_metrics(
                f"ensemble_{rule}", ensemble_probs(probs, rule), labels, top_k
            )
    return EvalReport(students, combined, list(class_names))


def evaluate_models(
    models: Sequence[nn.Module],
    dataset: Dataset,
    class_names: Sequence[str],
    batch_size: int = 64,
    device: str = "cpu",
    ensembles: Sequence[str] = ENSEMBLE_RULES,
    top_k: int = 5,
    names: Sequence[str] | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> EvalReport:
    logits, labels, _ = predict(models, dataset, batch_size, device, num_workers, progress)
    return score_students(logits, labels, class_names, ensembles, top_k, names)


# ----------------------------------------------------------------------------- outputs
def save_confusion_csv(metrics: Metrics, class_names: Sequence[str], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, metrics.confusion):
            writer.writerow([name, *row.tolist()])


def save_confusion_png(metrics: Metrics, class_names: Sequence[str], path: Path) -> None:
    """A row-normalised confusion matrix plot (counts written in small classes' cells)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    cm = metrics.confusion.astype(np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = min(4 + 0.35 * n, 24)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fontsize = 8 if n <= 30 else 5
    ax.set_xticklabels(class_names, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{metrics.name}: top-1 {100 * metrics.top1:.2f}% ({metrics.count} samples)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_report(
    report: EvalReport, out_dir: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write metrics.json and a confusion CSV + PNG per classifier into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for metrics in report.all():
        save_confusion_csv(metrics, report.class_names, out / f"confusion_{metrics.name}.csv")
        save_confusion_png(metrics, report.class_names, out / f"confusion_{metrics.name}.png")
    data = report.to_dict()
    if extra:
        data.update(extra)
    path = out / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def format_table(report: EvalReport) -> str:
    """A short plain-text table of top-1/top-k per classifier."""
    from xmkd.tables import text_table

    header = ("model", "top-1 %", f"top-{report.all()[0].k} %", "samples")
    rows = [
        (m.name, f"{100 * m.top1:.2f}", f"{100 * m.topk:.2f}", str(m.count)) for m in report.all()
    ]
    return text_table(header, rows)
