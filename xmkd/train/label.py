"""The teacher-label cache: the teacher runs once over the unlabeled pairs; distillation reads it.

``xmkd label`` writes one file (``torch.save`` of plain data, read back with ``weights_only=True``):

``format``       ``"xmkd-teacher-labels"``; ``version`` 2 (version 1 files, written before class
                 maps, still load: they have no ``no_label`` and no rule facts)
``names``        sample names (``SsssCcccPpppRrrrAaaa``), one per row of ``logits``
``logits``       float32 tensor (N, C): per clip, the scores of ``class_names``: the teacher's
                 logits when it labels its own classes, else the log of the target actions'
                 probabilities (``extra["scores"]`` says which; :mod:`xmkd.classmap`)
``class_names``  the classes of ``logits``: the teacher's own, or the target actions of a class
                 map / ``--actions`` (plus "background" with ``--background``)
``modality``     the teacher's input modality; ``teacher`` its checkpoint path or spec
``targets``      int64 tensor (N,): the clip's true action in ``class_names`` when the data
                 carries one (synthetic, NTU; mapped by :func:`xmkd.classmap.dataset_targets`),
                 else -1; never used for training, only to report how often the teacher is right
                 (the paper: 86% on Student-Train)
``no_label``     names of the clips whose best target probability is below ``min_confidence``:
                 ``xmkd distill`` leaves them out (:meth:`TeacherLabels.labeled_names`)
``extra``        facts: ``teacher_kind``, ``teacher_spec``, ``teacher_info``, the rule
                 (:meth:`xmkd.classmap.LabelRule.facts`: ``teacher_classes``, ``class_map`` as
                 plain data or None, ``open_vocabulary``, ``min_confidence``, ``background``,
                 ``scores``)

Labeling is resumable: names already in the output file are skipped, and the file is rewritten
atomically every few batches, so an interrupted run keeps what it had and a finished run is a
no-op; each batch is mapped to the target vocabulary as it is labeled, so a resumed run writes
the same file as an uninterrupted one. Resuming with another class map, threshold or background
setting is refused (write a new file). Distillation looks rows up by name, so the order of the
samples does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from xmkd.checkpoint import atomic_torch_save, safe_torch_load, to_plain
from xmkd.classmap import LabelRule, dataset_targets, same_rule
from xmkd.errors import CheckpointError, XmkdError
from xmkd.train.inputs import loader_options

FORMAT = "xmkd-teacher-labels"
#: 2: ``no_label`` and the rule facts (class maps); an older xmkd refuses these files instead of
#: training on the clips they leave without a label
VERSION = 2


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
    #: clips the teacher was not confident enough about (see the module docstring)
    no_label: list[str] = field(default_factory=list)

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
        self.no_label = list(self.no_label)
        self._no_label = set(self.no_label)
        if not self._no_label <= self._row.keys():
            raise ValueError("no_label names clips that have no row")

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

    def labeled_names(self) -> list[str]:
        """The names of the clips that have a label (all but ``no_label``), in cache order."""
        return [n for n in self.names if n not in self._no_label]

    def labeled_mask(self) -> torch.Tensor:
        """(N,) bool: the row has a label."""
        return torch.as_tensor([n not in self._no_label for n in self.names], dtype=torch.bool)

    def confidence(self) -> torch.Tensor:
        """(N,) per clip, the probability of its most probable target action (what
        ``--min-confidence`` is compared with; background does not count)."""
        z = self.logits.double()
        if self.extra.get("background"):
            z = z[:, :-1]
        if z.shape[1] == 0:
            return torch.zeros(len(self), dtype=torch.float32)
        probs = z.exp() if self.extra.get("scores") == "log_probs" else z.softmax(dim=1)
        return probs.max(dim=1).values.float()

    def predictions(self) -> torch.Tensor:
        """(N,) the class each clip is labeled with (argmax), -1 for the no-label clips."""
        pred = self.logits.argmax(dim=1) if len(self.class_names) else self.targets.clone()
        return torch.where(self.labeled_mask(), pred, torch.full_like(pred, -1))

    def accuracy(self) -> float | None:
        """How often the label of a labeled clip equals its known action (None if none known)."""
        known = (self.targets >= 0) & self.labeled_mask()
        if not bool(known.any()):
            return None
        pred = self.predictions()[known]
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
            "no_label": list(self.no_label),
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
            no_label=list(data.get("no_label") or []),
        )
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
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
    rule: LabelRule | None = None,
    data_classes: Sequence[str] | None = None,
    facts: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[TeacherLabels, dict[str, Any]]:
    """Run ``teacher`` over the items of ``dataset`` not yet in ``out`` and store their scores.

    ``dataset`` yields ``(x, target, index)`` with ``names[index]`` the sample name and
    ``target`` the index of its true class in ``data_classes`` (-1: unknown). ``class_names``
    are the teacher's classes; ``rule`` (default: those classes, no threshold) turns each
    batch's logits into the cache's rows and no-label decisions (:class:`LabelRule`), and the
    true classes are mapped to its target vocabulary. ``facts`` (teacher kind, spec, ...) go to
    the cache's ``extra``. ``on_progress(done, total)`` is called after each batch (``done``
    counts the clips already in the file too). Returns the complete cache and run facts
    (labeled now, skipped, samples/s).
    """
    from tqdm import tqdm

    out = Path(out)
    class_names = list(class_names)
    rule = rule or LabelRule(class_names)
    if rule.teacher_classes != class_names:
        raise ValueError("the label rule was made for other teacher classes")
    target_names = rule.target_names
    extra = {**to_plain(dict(facts or {}), "facts"), **rule.facts()}
    if out.exists():
        cache = load_labels(out)
        if cache.class_names != target_names:
            raise XmkdError(
                f"{out}: holds labels of other classes ({len(cache.class_names)}: "
                f"{', '.join(cache.class_names[:3])}, ...) than this run's ({len(target_names)}: "
                f"{', '.join(target_names[:3])}, ...); write to a new file"
            )
        if modality and cache.modality and cache.modality != modality:
            raise XmkdError(
                f"{out}: was labeled by a {cache.modality} teacher, this one is {modality}; "
                "write to a new file"
            )
        if not same_rule(cache.extra, rule, cache.class_names):
            raise XmkdError(
                f"{out}: was labeled with another class map, --min-confidence or --background "
                "setting (or teacher classes); write to a new file"
            )
        extra = {**cache.extra, **extra}
    else:
        cache = TeacherLabels([], torch.zeros(0, len(target_names)), target_names, modality)
    # the true classes of the data, as indices of the target vocabulary (None: the same)
    to_target = None
    if data_classes is None:
        if rule.class_map is not None:  # the data's classes are unknown: no truth in targets
            to_target = np.full(0, -1, dtype=np.int64)
    elif list(data_classes) != target_names[: len(data_classes)]:
        to_target = dataset_targets(data_classes, rule.action_names, rule.class_map)

    todo = [i for i, n in enumerate(names) if n not in cache]
    all_names = list(cache.names)
    rows = [cache.logits]
    targets = [cache.targets]
    no_label = list(cache.no_label)
    if not todo:
        if on_progress is not None:
            on_progress(len(names), len(names))
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
            class_names=target_names,
            modality=modality or cache.modality,
            teacher=teacher_path or cache.teacher,
            targets=torch.cat(targets),
            extra=extra,
            no_label=list(no_label),
        )

    def in_targets(target: Any) -> torch.Tensor:
        truth = torch.as_tensor(target, dtype=torch.int64).reshape(-1)
        if to_target is None:
            return truth
        table = torch.from_numpy(np.append(to_target, -1))  # last: any unknown class
        return table[torch.where((truth >= 0) & (truth < len(to_target)), truth, -1)]

    t0 = time.perf_counter()
    done = 0
    skipped = len(names) - len(todo)
    if on_progress is not None:
        on_progress(skipped, len(names))
    bar = tqdm(total=len(todo), desc="teacher labels", unit="clip", disable=not progress)
    try:
        for b, (x, target, index) in enumerate(loader, start=1):
            logits = teacher(x.to(device, non_blocking=True)).float().cpu()
            stored, _, labeled = rule.map_logits(logits)
            batch_names = [names[int(i)] for i in index]
            all_names.extend(batch_names)
            rows.append(stored)
            targets.append(in_targets(target) if len(target) else torch.zeros(0, dtype=torch.int64))
            no_label.extend(n for n, ok in zip(batch_names, labeled.tolist()) if not ok)
            done += len(index)
            bar.update(len(index))
            if on_progress is not None:
                on_progress(skipped + done, len(names))
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
        "skipped": skipped,
        "samples_per_s": round(done / max(elapsed, 1e-9), 2),
    }


def labeled_subset(dataset: Dataset, labels: TeacherLabels) -> tuple[Dataset, int]:
    """``dataset`` (items ``(x, label, index)`` with ``.names``) without the clips ``labels``
    left without a label, and how many were dropped; the items' index is their position in the
    subset (what the distillation target table is indexed by)."""
    names = list(dataset.names)
    dropped = set(labels.no_label)
    keep = [i for i, n in enumerate(names) if n not in dropped]
    if len(keep) == len(names):
        return dataset, 0
    return _Kept(dataset, keep), len(names) - len(keep)


class _Kept(Dataset):
    """Some items of a dataset, re-indexed: ``(x, label, position)``; the base's own seeded
    augmentation still sees the base index, so a kept clip is prepared as without the others."""

    def __init__(self, base: Any, keep: Sequence[int]):
        self.base = base
        self.keep = list(keep)
        self.names = [base.names[i] for i in self.keep]
        self.labels = np.asarray(base.labels, dtype=np.int64)[self.keep]
        self.class_names = getattr(base, "class_names", None)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, position: int):
        x, label, _, *rest = self.base[self.keep[position]]
        return (x, label, position, *rest)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)


def teacher_targets_for(
    labels: TeacherLabels, names: Sequence[str], source: str = "teacher labels"
) -> np.ndarray:
    """Logits rows (N, C) for ``names`` as float32 numpy (for the distillation target table)."""
    return labels.lookup(names, source).numpy()
