"""Model zoo of xmkd: the skeleton students (ST-GCN, HCN) and the video teacher (TSN).

``build_student(arch, num_classes, **kwargs)`` is the one way to construct a student, so a
checkpoint can record ``(arch, kwargs)`` and rebuild exactly the same network later.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from xmkd.models.hcn import HCN
from xmkd.models.resnet import ResNet
from xmkd.models.stgcn import STGCN
from xmkd.models.tsn import TSN, TSNInputSpec, sample_segments, teacher_input

#: Student architectures by name, as recorded in checkpoints.
STUDENT_REGISTRY: dict[str, type[nn.Module]] = {"stgcn": STGCN, "hcn": HCN}
STUDENT_ARCHS: tuple[str, ...] = tuple(STUDENT_REGISTRY)


def student_options(arch: str) -> tuple[str, ...]:
    """Keyword arguments ``build_student`` accepts for ``arch`` (besides num_classes)."""
    cls = _student_class(arch)
    names = inspect.signature(cls.__init__).parameters
    return tuple(n for n in names if n not in ("self", "num_class"))


def build_student(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Construct a skeleton student: input (N, 3, T, 25, M) -> logits (N, num_classes).

    ``arch`` is one of ``STUDENT_ARCHS``; ``kwargs`` are the model's constructor options
    (e.g. ``width=0.25``; HCN's ``window_size``; ST-GCN's ``graph_args``). Defaults give the
    reference networks.
    """
    cls = _student_class(arch)
    allowed = student_options(arch)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for student {arch!r}; "
            f"accepted: {', '.join(allowed)}"
        )
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return cls(num_class=int(num_classes), **kwargs)


def _student_class(arch: str) -> type[nn.Module]:
    try:
        return STUDENT_REGISTRY[arch]
    except KeyError:
        raise ValueError(
            f"unknown student architecture {arch!r}; choose one of {', '.join(STUDENT_ARCHS)}"
        ) from None


__all__ = [
    "HCN",
    "STGCN",
    "STUDENT_ARCHS",
    "STUDENT_REGISTRY",
    "TSN",
    "ResNet",
    "TSNInputSpec",
    "build_student",
    "sample_segments",
    "student_options",
    "teacher_input",
]
