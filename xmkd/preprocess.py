"""THE skeleton window preprocessing, shared by training, evaluation, export and live inference.

A student sees a fixed-size window (3, T, 25, M) built from a clip of ``valid_frames`` frames.
How the clip is fitted to the window, whether it is centred and how it is cropped is part of the
model: it is described by an ``InputSpec`` that checkpoints store (``to_dict``/``from_dict``), so
the live path preprocesses exactly as training did.

Fitting a clip to the window (``InputSpec.fit``):

* ``"pad"``: the ST-GCN reference (st-gcn ``tools/ntu_gendata.py``): the valid frames at the
  start, zeros after, truncated at ``window`` (300 for NTU); no normalisation.
* ``"resize"``: the valid frames resampled to ``window`` frames by linear interpolation (for
  CPU-sized and live runs with a short window).
* ``"crop_resize"``: HCN's pipeline (HCN-pytorch / CTR-GCN ``valid_crop_resize``): training crops
  a random ratio in ``train_crop`` of the valid frames (at least ``min_crop_frames`` when the clip
  has them) at a random offset; testing crops the centre ``test_crop``; the crop is then resized
  to ``window`` frames. The interpolation is ``F.interpolate(..., mode="bilinear",
  align_corners=False)`` along time, as the reference does it.

Centering (``InputSpec.center``) subtracts joint ``ORIGIN_JOINT`` (2, mid spine) of person 0 from
every present joint of both persons: per frame (``"frame"``) or using the first frame of the window
(``"first"``, pyskl's PreNormalize3D). Padded frames stay exactly zero, and so do absent persons
unless ``keep_absent_zero`` is False: HCN-pytorch (``origin_transfer=0``) subtracts the origin from
every entry of a non-empty frame, so a missing second person becomes minus person 0's origin; the
HCN default spec reproduces that.

Arrays are numpy ``(3, T, 25, M)`` for datasets (``prepare_window``) and torch ``(N, 3, T, 25, M)``
for the batched live path (``prepare_batch``, deterministic/test mode); both compute the same
numbers for the same clip.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from xmkd.skeleton import NUM_JOINTS, ORIGIN_JOINT, flip_permutation

FitMode = Literal["pad", "resize", "crop_resize"]
CenterMode = Literal["none", "frame", "first"]
FIT_MODES: tuple[str, ...] = ("pad", "resize", "crop_resize")
CENTER_MODES: tuple[str, ...] = ("none", "frame", "first")


@dataclass(frozen=True)
class InputSpec:
    """How a skeleton clip becomes a student's input window. Defaults are the ST-GCN reference.

    Attributes:
        window: frames per window (ST-GCN reference 300; HCN reference 32).
        fit: "pad" | "resize" | "crop_resize" (see the module docstring).
        center: "none" | "frame" | "first": subtract person 0's ORIGIN_JOINT.
        keep_absent_zero: with centering, leave joints of absent persons at zero (True, as
            pyskl) or subtract the origin from them too (False, as HCN-pytorch).
        num_persons: persons M in the window (extra persons dropped, missing ones zero).
        train_crop: (min, max) ratio of the valid frames cropped at random in training
            ("crop_resize" only).
        test_crop: ratio of the valid frames kept, centred, at test time ("crop_resize" only).
        min_crop_frames: a training crop keeps at least this many frames when the clip has
            them (64 in the reference, which never crops clips shorter than 64 frames).
        flip_prob: training augmentation: probability of a left-right mirror (negate x, swap
            left/right joints). Off by default; mirrored actions change handedness.
        rotate_deg: training augmentation: random rotation about the vertical axis in
            [-rotate_deg, rotate_deg] degrees, around person 0's mean origin joint.
        scale: training augmentation: multiply coordinates by a factor in [1-scale, 1+scale].
        jitter_std: training augmentation: Gaussian noise (metres) on present joints.
    """

    window: int = 300
    fit: FitMode = "pad"
    center: CenterMode = "none"
    keep_absent_zero: bool = True
    num_persons: int = 2
    train_crop: tuple[float, float] = (0.5, 1.0)
    test_crop: float = 0.95
    min_crop_frames: int = 64
    flip_prob: float = 0.0
    rotate_deg: float = 0.0
    scale: float = 0.0
    jitter_std: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 frame, got {self.window}")
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {self.fit!r}")
        if self.center not in CENTER_MODES:
            raise ValueError(
                f"center must be one of {', '.join(CENTER_MODES)}, got {self.center!r}"
            )
        if self.num_persons < 1:
            raise ValueError(f"num_persons must be at least 1, got {self.num_persons}")
        lo, hi = self.train_crop
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"train_crop must satisfy 0 < min <= max <= 1, got {self.train_crop}")
        object.__setattr__(self, "train_crop", (float(lo), float(hi)))
        if not 0.0 < self.test_crop <= 1.0:
            raise ValueError(f"test_crop must be in (0, 1], got {self.test_crop}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if self.rotate_deg < 0 or self.scale < 0 or self.jitter_std < 0 or self.scale >= 1:
            raise ValueError("rotate_deg, jitter_std must be >= 0 and scale in [0, 1)")

    @property
    def augments(self) -> bool:
        """Whether training applies any random augmentation besides the crop."""
        return bool(self.flip_prob or self.rotate_deg or self.scale or self.jitter_std)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints (loads with ``torch.load(weights_only=True)``)."""
        data = dataclasses.asdict(self)
        data["train_crop"] = list(self.train_crop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Rebuild a spec from ``to_dict`` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown input spec field(s): {', '.join(unknown)}")
        data = dict(data)
        if "train_crop" in data:
            data["train_crop"] = tuple(data["train_crop"])
        return cls(**data)

    def replace(self, **changes: Any) -> InputSpec:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


#: The references' preprocessing per student architecture.
DEFAULT_INPUT_SPECS: dict[str, InputSpec] = {
    # st-gcn: zero-padded 300-frame windows, raw camera coordinates.
    "stgcn": InputSpec(window=300, fit="pad", center="none"),
    # HCN: crop [0.5, 1] (test: centre 0.95), resized to 32 frames (the paper's window;
    # HCN-pytorch's NTU config uses 64), centred per frame on person 0's mid spine.
    "hcn": InputSpec(
        window=32,
        fit="crop_resize",
        center="frame",
        keep_absent_zero=False,
        train_crop=(0.5, 1.0),
        test_crop=0.95,
        min_crop_frames=64,
    ),
}


def default_input_spec(arch: str, **overrides: Any) -> InputSpec:
    """The reference preprocessing for a student architecture, optionally with changes.

    For HCN the model's ``window_size`` must equal the spec's ``window``.
    """
    try:
        spec = DEFAULT_INPUT_SPECS[arch]
    except KeyError:
        raise ValueError(
            f"no default input spec for {arch!r}; known: {', '.join(DEFAULT_INPUT_SPECS)}"
        ) from None
    return spec.replace(**overrides) if overrides else spec


def student_kwargs(arch: str, spec: InputSpec) -> dict[str, Any]:
    """Constructor options a student needs to accept windows of ``spec`` (HCN's window_size)."""
    return {"window_size": spec.window} if arch == "hcn" else {}


# ---------------------------------------------------------------------------------------------
# Temporal fitting
def crop_range(
    valid_frames: int, spec: InputSpec, train: bool, rng: np.random.Generator | None = None
) -> tuple[int, int]:
    """(start, length) of the valid frames that go into the window."""
    if valid_frames <= 0:
        return 0, 0
    if spec.fit == "pad":
        return 0, min(valid_frames, spec.window)
    if spec.fit == "resize":
        return 0, valid_frames
    if not train:
        bias = int((1.0 - spec.test_crop) * valid_frames / 2)
        return bias, max(1, valid_frames - 2 * bias)
    rng = rng if rng is not None else np.random.default_rng()
    lo, hi = spec.train_crop
    ratio = rng.uniform(lo, hi) if hi > lo else lo
    length = min(max(int(math.floor(valid_frames * ratio)), spec.min_crop_frames), valid_frames)
    length = max(length, 1)
    start = int(rng.integers(0, valid_frames - length + 1))
    return start, length


def resample_plan(length: int, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (i0, i1) and weights lam so that out[w] = (1-lam) x[i0] + lam x[i1].

    The sample positions of ``F.interpolate(mode="linear"/"bilinear", align_corners=False)``:
    src = (w + 0.5) * length / window - 0.5, clamped at 0.
    """
    scale = length / window
    src = np.maximum((np.arange(window) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), length - 1)
    i1 = np.minimum(i0 + 1, length - 1)
    lam = src - i0
    return i0, i1, lam


def _fit_numpy(clip: np.ndarray, start: int, length: int, spec: InputSpec) -> np.ndarray:
    c, _, v, m = clip.shape
    out = np.zeros((c, spec.window, v, m), dtype=np.float32)
    if length <= 0:
        return out
    seg = clip[:, start : start + length].astype(np.float32, copy=False)
    if spec.fit == "pad":
        out[:, :length] = seg
        return out
    i0, i1, lam = resample_plan(length, spec.window)
    lam = lam.astype(np.float32)[None, :, None, None]
    out[:] = seg[:, i0] * (1.0 - lam) + seg[:, i1] * lam
    return out


# ---------------------------------------------------------------------------------------------
# Centering and augmentation
def _present(window: np.ndarray) -> np.ndarray:
    """(1, T, V, M) mask of joints that hold data (padding and absent persons are all-zero)."""
    return (window != 0).any(axis=0, keepdims=True)


def center_window(
    window: np.ndarray, mode: CenterMode, keep_absent_zero: bool = True
) -> np.ndarray:
    """Subtract person 0's origin joint (per frame or from the first frame) from present joints.

    Empty frames (padding) stay zero; absent persons too when ``keep_absent_zero``.
    """
    if mode == "none":
        return window
    present = _present(window)
    mask = present if keep_absent_zero else present.any(axis=(2, 3), keepdims=True)
    origin = window[:, :, ORIGIN_JOINT - 1 : ORIGIN_JOINT, 0:1]  # (C, T, 1, 1)
    if mode == "first":
        has = present[0, :, ORIGIN_JOINT - 1, 0]
        if not has.any():
            return window
        origin = np.broadcast_to(origin[:, int(np.argmax(has))][:, None], origin.shape)
    return ((window - origin) * mask).astype(np.float32)


def augment_window(window: np.ndarray, spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    """The optional training augmentations of ``spec`` (flip, yaw rotation, scale, jitter)."""
    if not spec.augments:
        return window
    present = _present(window)
    out = window.astype(np.float32, copy=True)
    if spec.flip_prob and rng.random() < spec.flip_prob:
        out = out[:, :, flip_permutation()]
        out[0] = -out[0]
        present = present[:, :, flip_permutation()]
    if spec.rotate_deg:
        angle = math.radians(rng.uniform(-spec.rotate_deg, spec.rotate_deg))
        pivot_mask = present[0, :, ORIGIN_JOINT - 1, 0]
        pivot = (
            out[:, pivot_mask, ORIGIN_JOINT - 1, 0].mean(axis=1)
            if pivot_mask.any()
            else np.zeros(out.shape[0], dtype=np.float32)
        )
        x = out[0] - pivot[0]
        z = out[2] - pivot[2]
        cos, sin = math.cos(angle), math.sin(angle)
        out[0] = cos * x + sin * z + pivot[0]
        out[2] = -sin * x + cos * z + pivot[2]
    if spec.scale:
        out *= rng.uniform(1.0 - spec.scale, 1.0 + spec.scale)
    if spec.jitter_std:
        out += rng.normal(0.0, spec.jitter_std, size=out.shape).astype(np.float32)
    return (out * present).astype(np.float32)


def _select_persons(clip: np.ndarray, num_persons: int) -> np.ndarray:
    m = clip.shape[-1]
    if m == num_persons:
        return clip
    if m > num_persons:
        return clip[..., :num_persons]
    pad = np.zeros((*clip.shape[:-1], num_persons - m), dtype=clip.dtype)
    return np.concatenate([clip, pad], axis=-1)


# ---------------------------------------------------------------------------------------------
# Public entry points
def prepare_window(
    clip: np.ndarray,
    valid_frames: int | None,
    spec: InputSpec,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One clip (3, T, 25, M) with ``valid_frames`` real frames -> float32 (3, window, 25, M').

    ``train`` enables the random crop and augmentations (drawn from ``rng``; a seeded generator
    gives reproducible windows); otherwise the result is deterministic. M' = spec.num_persons.
    """
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[2] != NUM_JOINTS:
        raise ValueError(f"expected a skeleton clip (C, T, 25, M), got shape {clip.shape}")
    valid = clip.shape[1] if valid_frames is None else int(valid_frames)
    valid = max(0, min(valid, clip.shape[1]))
    if train and rng is None:
        rng = np.random.default_rng()
    clip = _select_persons(clip, spec.num_persons)
    start, length = crop_range(valid, spec, train, rng)
    window = _fit_numpy(clip, start, length, spec)
    window = center_window(window, spec.center, spec.keep_absent_zero)
    if train:
        window = augment_window(window, spec, rng)
    return np.ascontiguousarray(window, dtype=np.float32)


def prepare_batch(
    clips: torch.Tensor,
    spec: InputSpec,
    valid_frames: torch.Tensor | list[int] | int | None = None,
) -> torch.Tensor:
    """Batched, deterministic (test-mode) preprocessing in torch for the live/export path.

    clips (N, 3, T, 25, M), ``valid_frames`` per clip (default: all T) -> (N, 3, window, 25, M')
    with the same numbers ``prepare_window(..., train=False)`` gives. Runs on the clips' device.
    """
    if clips.ndim != 5 or clips.shape[3] != NUM_JOINTS:
        raise ValueError(
            f"expected skeleton clips (N, C, T, 25, M), got shape {tuple(clips.shape)}"
        )
    n, c, t, v, m = clips.shape
    device = clips.device
    if valid_frames is None:
        valid = [t] * n
    elif isinstance(valid_frames, int):
        valid = [valid_frames] * n
    else:
        valid = [
            int(f)
            for f in (valid_frames.tolist() if torch.is_tensor(valid_frames) else valid_frames)
        ]
    if len(valid) != n:
        raise ValueError(f"valid_frames has {len(valid)} entries for {n} clips")
    valid = [max(0, min(f, t)) for f in valid]

    x = clips.float()
    if m > spec.num_persons:
        x = x[..., : spec.num_persons]
    elif m < spec.num_persons:
        x = torch.cat([x, x.new_zeros(n, c, t, v, spec.num_persons - m)], dim=-1)

    # Gather plan per clip (a few small numpy ops per clip; the heavy work is one gather).
    w = spec.window
    i0 = np.zeros((n, w), dtype=np.int64)
    i1 = np.zeros((n, w), dtype=np.int64)
    lam = np.zeros((n, w), dtype=np.float32)
    keep = np.zeros((n, w), dtype=np.float32)
    for k, f in enumerate(valid):
        start, length = crop_range(f, spec, train=False)
        if length <= 0:
            continue
        if spec.fit == "pad":
            i0[k, :length] = i1[k, :length] = np.arange(length)
            keep[k, :length] = 1.0
        else:
            a, b, l_ = resample_plan(length, w)
            i0[k], i1[k], lam[k] = a + start, b + start, l_
            keep[k] = 1.0

    def gather(idx: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(idx, device=device)[:, None, :, None, None]
        return x.gather(2, index.expand(n, c, w, v, x.shape[-1]))

    lam_t = torch.as_tensor(lam, device=device)[:, None, :, None, None]
    keep_t = torch.as_tensor(keep, device=device)[:, None, :, None, None]
    out = (gather(i0) * (1.0 - lam_t) + gather(i1) * lam_t) * keep_t
    return center_batch(out, spec.center, spec.keep_absent_zero)


def center_batch(x: torch.Tensor, mode: CenterMode, keep_absent_zero: bool = True) -> torch.Tensor:
    """Torch version of ``center_window`` for (N, C, T, V, M) windows."""
    if mode == "none":
        return x
    present = (x != 0).any(dim=1, keepdim=True).to(x.dtype)
    mask = present if keep_absent_zero else present.amax(dim=(3, 4), keepdim=True)
    origin = x[:, :, :, ORIGIN_JOINT - 1 : ORIGIN_JOINT, 0:1]  # (N, C, T, 1, 1)
    if mode == "first":
        has = present[:, 0, :, ORIGIN_JOINT - 1, 0] > 0  # (N, T)
        first = torch.argmax(has.to(torch.int64), dim=1)  # first present frame (0 if none)
        idx = first[:, None, None, None, None].expand(-1, x.shape[1], 1, 1, 1)
        origin = origin.gather(2, idx).expand_as(origin)
    return (x - origin) * mask
