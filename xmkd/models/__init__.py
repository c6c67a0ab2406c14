"""Model zoo of xmkd: the skeleton students (ST-GCN, HCN) and the video teacher (TSN).

``build_student(arch, num_classes, **kwargs)`` is the one way to construct a student, so a
checkpoint can record ``(arch, kwargs)`` and rebuild exactly the same network later. Sizes are
checked before any memory is allocated (a corrupt checkpoint's ``width=1e6`` would otherwise ask
for hundreds of GB): each size option must lie in a sane range and the parameter count, taken
from the network built on torch's ``meta`` device, must stay below :data:`MAX_PARAMETERS`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from xmkd.models.hcn import HCN
from xmkd.models.resnet import ResNet
from xmkd.models.stgcn import STGCN
from xmkd.models.tsn import TSN, TSNInputSpec, sample_segments, teacher_input

#: Student architectures by name, as recorded in checkpoints.
STUDENT_REGISTRY: dict[str, type[nn.Module]] = {"stgcn": STGCN, "hcn": HCN}
STUDENT_ARCHS: tuple[str, ...] = tuple(STUDENT_REGISTRY)
#: Most parameters (and buffers) a student may have: 1 GiB of float32. The reference ST-GCN has
#: 3.1 M, HCN 2.6 M at a 32-frame window.
MAX_PARAMETERS = 256 << 20
#: Most classes a student may predict (NTU-120 has 120).
MAX_CLASSES = 100_000
#: Sane upper bounds of the size options of the students (all must also be > 0).
SIZE_BOUNDS: dict[str, float] = {
    "width": 64.0,
    "window_size": 9000,
    "num_person": 16,
    "num_joint": 1000,
    "in_channel": 64,
    "in_channels": 64,
    "out_channel": 4096,
    "num_segments": 64,
    "new_length": 64,
}


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
    check_size(arch, num_classes, kwargs)
    return cls(num_class=int(num_classes), **kwargs)


def check_size(arch: str, num_classes: int, kwargs: dict[str, Any]) -> int:
    """Raise ValueError when a student (or, for arch ``"tsn"``, the teacher) would be absurdly
    large; else its parameter count.

    The size options must be numbers in ``(0, SIZE_BOUNDS[name]]`` and the network, built on the
    ``meta`` device (shapes only, no memory), must have at most :data:`MAX_PARAMETERS` values.
    """
    cls = TSN if arch == "tsn" else _student_class(arch)
    classes_kw = "num_classes" if arch == "tsn" else "num_class"
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise ValueError(f"num_classes must be a whole number, got {num_classes!r}")
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be between 1 and {MAX_CLASSES}, got {num_classes}")
    for name, bound in SIZE_BOUNDS.items():
        if name not in kwargs:
            continue
        value = kwargs[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0 < value <= bound:
            raise ValueError(
                f"{arch} option {name}={value!r} is outside its sane range (0, {bound:g}]"
            )
    try:
        with torch.device("meta"), _ShapesOnly():
            model = cls(**{classes_kw: num_classes}, **kwargs)
    except (RuntimeError, OverflowError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"{arch} with {kwargs} cannot be built ({first})") from None
    count = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"{arch} with {kwargs} and {num_classes} classes would have {count:,} parameters "
            f"({count * 4 / 2**30:.1f} GiB), more than the {MAX_PARAMETERS:,} xmkd builds"
        )
    return count


class _ShapesOnly(TorchFunctionMode):
    """Skips weight initialisation on meta tensors: only shapes are wanted, and torch's meta
    versions of ``normal_``/``ones_like`` import its symbolic-math stack (2 s on first use)."""

    _LIKE = (torch.ones_like, torch.zeros_like, torch.full_like, torch.rand_like, torch.randn_like)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes tensor=
        if isinstance(target, torch.Tensor) and target.is_meta:
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.startswith("__"):  # in-place init: normal_ etc.
                return target
            if func in self._LIKE:
                dtype = kwargs.get("dtype") or target.dtype
                return torch.empty(target.shape, dtype=dtype, device="meta")
        return func(*args, **kwargs)


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
    "check_size",
    "sample_segments",
    "student_options",
    "teacher_input",
]
