"""The teacher-label cache: the teacher runs once over the unlabeled pairs; distillation reads it.

``xmkd label`` writes one file (``torch.save`` of plain data, read back with ``weights_only=True``):

``format``       ``"xmkd-teacher-labels"``; ``version`` 1
``names``        sample names (``SsssCcccPpppRrrrAaaa``), one per row of ``logits``
``logits``       float32 tensor (N, C): the teacher's class scores (before softmax, tau = 1)
``class_names``  the teacher's classes; ``modality`` its input modality; ``teacher`` its path
``targets``      int64 tensor (N,): the clip's own action label when the name carries one (the
                 synthetic generator writes its ground truth), else -1; never used for training,
                 only to report how often the teacher is right (the paper: 86% on Student-Train)

Labeling is resumable: names already in the output file are skipped, and the file is rewritten
atomically every few batches, so an interrupted run keeps what it had and a finished run is a
no-op. Distillation looks rows up by name, so the order of the samples does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from xmkd.checkpoint import atomic_torch_save, safe_torch_load
from xmkd.errors import CheckpointError, XmkdError
from xmkd.train.inputs import loader_options

FORMAT = "xmkd-teacher-labels"
VERSION = 1


@dataclass
class TeacherLabels:
    """Cached teacher logits by sample name."""

    names: list[str]
    logits: torch.Tensor
    class_names: list[str]
    modality: str = ""
    teacher: str = ""
    targets: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logits = torch.as_tensor(self.logits, dtype=torch.float32).reshape(
            len(self.names), len(self.class_names)
        )
        if self.targets is None:
            self.targets = torch.full((len(self.names),), -1, dtype=torch.int64)
        self.targets = torch.as_tensor(self.targets, dtype=torch.int64).reshape(-1)
        self._row = {n: i for i, n in enumerate(self.names)}
        if len(self._row) != len(self.names):
            raise ValueError("duplicate sample names in teacher labels")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._row

    def lookup(self, names: Sequence[str], source: str = "the teacher labels") -> torch.Tensor:
        """Logits (len(names), C) in the order of ``names``; missing names are an XmkdError."""
        missing = [n for n in names if n not in self._row]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise XmkdError(
                f"{source}: no teacher label for {len(missing)} of {len(names)} training "
                f"samples ({shown}); run `xmkd label` over the same sessions"
            )
        return self.logits[torch.as_tensor([self._row[n] for n in names], dtype=torch.long)]

    def accuracy(self) -> float | None:
        """How often the teacher's argmax equals the known action label (None if none known)."""
        known = self.targets >= 0
        if not bool(known.any()):
            return None
        pred = self.logits[known].argmax(dim=1)
        return float((pred == self.targets[known]).float().mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "names": list(self.names),
            "logits": self.logits.contiguous(),
            "class_names": list(self.class_names),
            "modality": self.modality,
            "teacher": self.teacher,
            "targets": self.targets.contiguous(),
            "extra": dict(self.extra),
        }

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(path, self.to_dict())


def load_labels(path: str | Path) -> TeacherLabels:
    """Read a label cache (weights_only); a foreign or broken file is a CheckpointError."""
    path = Path(path)
    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: is not a teacher-label file (no format '{FORMAT}')")
    if int(data.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: label file version {data['version']} is too new")
    try:
        return TeacherLabels(
            names=list(data["names"]),
            logits=data["logits"],
            class_names=list(data["class_names"]),
            modality=str(data.get("modality", "")),
            teacher=str(data.get("teacher", "")),
            targets=data.get("targets"),
            extra=dict(data.get("extra") or {}),
        )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: teacher-label file is inconsistent ({exc})") from exc


@torch.no_grad()
def label_dataset(
    teacher: nn.Module,
    dataset: Dataset,
    names: Sequence[str],
    out: str | Path,
    class_names: Sequence[str],
    modality: str = "",
    teacher_path: str = "",
    batch_size: int = 32,
    device: str = "cpu",
    save_every: int = 20,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[TeacherLabels, dict[str, Any]]:
    """Run ``teacher`` over the items of ``dataset`` not yet in ``out`` and store their logits.

    ``dataset`` yields ``(x, target, index)`` with ``names[index]`` the sample name. Returns the
    complete cache and run facts (labeled now, skipped, samples/s).
    """
    from tqdm import tqdm

    out = Path(out)
    class_names = list(class_names)
    if out.exists():
        cache = load_labels(out)
        if cache.class_names != class_names:
            raise XmkdError(
                f"{out}: holds labels of other classes ({len(cache.class_names)}) than this "
                f"teacher's ({len(class_names)}); write to a new file"
            )
        if modality and cache.modality and cache.modality != modality:
            raise XmkdError(
                f"{out}: was labeled by a {cache.modality} teacher, this one is {modality}; "
                "write to a new file"
            )
    else:
        cache = TeacherLabels([], torch.zeros(0, len(class_names)), class_names, modality)
    todo = [i for i, n in enumerate(names) if n not in cache]
    all_names = list(cache.names)
    rows = [cache.logits]
    targets = [cache.targets]
    if not todo:
        return cache, {"labeled": 0, "skipped": len(names), "samples_per_s": None}

    teacher = teacher.to(device).eval()
    loader = DataLoader(
        Subset(dataset, todo),
        batch_size=batch_size,
        shuffle=False,
        **loader_options(num_workers, pin_memory=str(device).startswith("cuda")),
    )

    def snapshot() -> TeacherLabels:
        return TeacherLabels(
            names=list(all_names),
            logits=torch.cat(rows),
            class_names=class_names,
            modality=modality or cache.modality,
            teacher=teacher_path or cache.teacher,
            targets=torch.cat(targets),
            extra=cache.extra,
        )

    t0 = time.perf_counter()
    done = 0
    bar = tqdm(total=len(todo), desc="teacher labels", unit="clip", disable=not progress)
    try:
        for b, (x, target, index) in enumerate(loader, start=1):
            logits = teacher(x.to(device, non_blocking=True)).float().cpu()
            all_names.extend(names[int(i)] for i in index)
            rows.append(logits)
            targets.append(torch.as_tensor(target, dtype=torch.int64).reshape(-1))
            done += len(index)
            bar.update(len(index))
            if save_every and b % save_every == 0:
                snapshot().save(out)
    finally:
        bar.close()
        if done:  # keep what was labeled, also when interrupted
            snapshot().save(out)
    elapsed = time.perf_counter() - t0
    final = snapshot()
    return final, {
        "labeled": done,
        "skipped": len(names) - len(todo),
        "samples_per_s": round(done / max(elapsed, 1e-9), 2),
    }


def teacher_targets_for(
    labels: TeacherLabels, names: Sequence[str], source: str = "teacher labels"
) -> np.ndarray:
    """Logits rows (N, C) for ``names`` as float32 numpy (for the distillation target table)."""
    return labels.lookup(names, source).numpy()
