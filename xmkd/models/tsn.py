"""TSN video teacher (Wang et al., ECCV 2016) and its input pipeline.

Temporal Segment Networks split a clip into K segments, run one 2D CNN on a short snippet from
each segment and average the K class scores (the "average consensus"). Modalities, as in TSN:

* ``"rgb"``: one RGB frame per segment (3 channels);
* ``"rgbdiff"``: differences of ``new_length`` consecutive frame pairs (3 * new_length
  channels; ``keep_rgb`` also stacks the first frame's RGB in front);
* ``"flow"``: ``new_length`` (5) stacked x/y optical-flow fields (2 * new_length = 10 channels).

The backbone is a torchvision-compatible ResNet (``xmkd.models.resnet``); ImageNet weights are
loaded from a user's file with ``TSN.load_backbone_weights`` (no download). For non-RGB
modalities the first conv is initialised from the RGB weights by averaging over the colour
channels and replicating the average over the new channels (TSN's cross-modality pre-training).
As in TSN, dropout precedes the new classifier (``new_fc``) and partial BN freezes the
statistics and affine parameters of every BatchNorm but the first while training (only useful
with pre-trained weights: a from-scratch teacher should pass ``partial_bn=False``).

The input pipeline works on a clip's decoded frames, uint8 (T, H, W, 3) RGB or (T, H, W, 2)
quantised flow (``recordings/README.md``: round(255 * (v + 20) / 40)), and returns the model
input (K, C, crop, crop): segment sampling (random offset inside each segment for training, the
centre for testing), multi-scale random crop + horizontal flip for training, resize + centre
crop for testing, normalisation and modality stacking.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import nn

from xmkd.errors import CheckpointError
from xmkd.models.resnet import ResNet, ResNetArch, Stem

Modality = Literal["rgb", "rgbdiff", "flow"]
MODALITIES: tuple[str, ...] = ("rgb", "rgbdiff", "flow")
#: Snippet length per segment in TSN: 1 RGB frame, 5 flow fields, 5 RGB differences.
DEFAULT_NEW_LENGTH: dict[str, int] = {"rgb": 1, "rgbdiff": 5, "flow": 5}
#: TSN's dropout before the classifier: 0.8 for spatial nets, 0.7 for temporal (flow) nets.
DEFAULT_DROPOUT: dict[str, float] = {"rgb": 0.8, "rgbdiff": 0.8, "flow": 0.7}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: TSN normalises flow images by 0.5 and the mean ImageNet std.
FLOW_MEAN = 0.5
FLOW_STD = float(np.mean(IMAGENET_STD))


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")


def input_channels(modality: Modality, new_length: int, keep_rgb: bool = False) -> int:
    """Channels of one segment's input for a modality."""
    _check_modality(modality)
    if modality == "rgb":
        return 3 * new_length
    if modality == "flow":
        return 2 * new_length
    return 3 * new_length + (3 if keep_rgb else 0)


def frames_per_segment(modality: Modality, new_length: int) -> int:
    """Consecutive decoded frames (or flow fields) a segment's snippet reads."""
    return new_length + 1 if modality == "rgbdiff" else new_length


# ---------------------------------------------------------------------------------------------
# Model
class TSN(nn.Module):
    """Temporal Segment Network with a ResNet backbone.

    Args:
        num_classes: number of action classes.
        modality: "rgb" | "rgbdiff" | "flow".
        num_segments: K segments sampled per clip (3 in TSN training); the forward accepts any
            K and averages over it.
        backbone: "resnet18" | "resnet34" | "resnet50".
        width: channel multiplier of the backbone (1.0 = torchvision; 0.25-0.5 for CPU runs).
        new_length: snippet length per segment (default per modality, see DEFAULT_NEW_LENGTH).
        keep_rgb: rgbdiff only: also stack the first frame's RGB.
        dropout: before the classifier (default per modality, see DEFAULT_DROPOUT).
        partial_bn: freeze all BatchNorm layers but the first while training (TSN).
        stem: "imagenet" (torchvision's; needed for ImageNet weights) or "small" (for frames of
            about 64x64, see ``xmkd.models.resnet.Stem``).
    """

    def __init__(
        self,
        num_classes: int,
        modality: Modality = "rgb",
        num_segments: int = 3,
        backbone: ResNetArch = "resnet18",
        width: float = 1.0,
        new_length: int | None = None,
        keep_rgb: bool = False,
        dropout: float | None = None,
        partial_bn: bool = True,
        stem: Stem = "imagenet",
    ):
        super().__init__()
        _check_modality(modality)
        if num_segments < 1:
            raise ValueError(f"num_segments must be at least 1, got {num_segments}")
        if keep_rgb and modality != "rgbdiff":
            raise ValueError("keep_rgb applies to the rgbdiff modality only")
        self.modality = modality
        self.num_segments = num_segments
        self.new_length = new_length or DEFAULT_NEW_LENGTH[modality]
        self.keep_rgb = keep_rgb
        self.partial_bn = partial_bn
        self.num_classes = num_classes
        self.in_channels = input_channels(modality, self.new_length, keep_rgb)
        dropout = DEFAULT_DROPOUT[modality] if dropout is None else dropout
        #: Constructor arguments, for checkpoints (``TSN(num_classes, **model.init_kwargs)``).
        self.init_kwargs: dict[str, Any] = {
            "modality": modality,
            "num_segments": num_segments,
            "backbone": backbone,
            "width": width,
            "new_length": self.new_length,
            "keep_rgb": keep_rgb,
            "dropout": dropout,
            "partial_bn": partial_bn,
            "stem": stem,
        }
        self.base_model = ResNet(backbone, in_channels=self.in_channels, width=width, stem=stem)
        # As TSN: the backbone's fc becomes dropout and a new classifier follows.
        self.base_model.fc = nn.Dropout(dropout)
        self.new_fc = nn.Linear(self.base_model.num_features, num_classes)
        nn.init.normal_(self.new_fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.new_fc.bias)
        # Partial BN: the frozen layers' affine parameters never train. Freezing them here, not
        # in train(), keeps requires_grad fixed, which DistributedDataParallel needs.
        for bn in self._frozen_bns():
            bn.weight.requires_grad_(False)
            bn.bias.requires_grad_(False)
        self.train()

    # -- training mode -----------------------------------------------------------------------
    def _frozen_bns(self) -> list[nn.BatchNorm2d]:
        if not self.partial_bn:
            return []
        return [m for m in self.base_model.modules() if isinstance(m, nn.BatchNorm2d)][1:]

    def train(self, mode: bool = True) -> TSN:
        """Set train/eval mode; with partial BN, every BatchNorm but the first keeps eval mode."""
        super().train(mode)
        for bn in self._frozen_bns():
            bn.eval()
        return self

    # -- forward -----------------------------------------------------------------------------
    def segment_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-segment class scores (N, K, classes) for input (N, K, C, H, W)."""
        if x.ndim != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"TSN ({self.modality}) expects input (N, K, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        n, k = x.shape[:2]
        feats = self.base_model(x.reshape(n * k, *x.shape[2:]))  # fc is dropout: features
        return self.new_fc(feats).view(n, k, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average consensus over segments: logits (N, classes) for (N, K, C, H, W)."""
        return self.segment_logits(x).mean(dim=1)

    # -- weights -----------------------------------------------------------------------------
    def first_conv_from_rgb(self, rgb_weight: torch.Tensor) -> torch.Tensor:
        """First-conv weights for this modality from RGB weights (out, 3, kh, kw).

        TSN's cross-modality init: average over the 3 colour channels and replicate the average
        over all input channels; rgbdiff with ``keep_rgb`` keeps the RGB weights for the RGB
        channels in front.
        """
        if self.modality == "rgb":
            return rgb_weight.repeat(1, self.new_length, 1, 1) / self.new_length
        mean = rgb_weight.mean(dim=1, keepdim=True)
        if self.modality == "rgbdiff" and self.keep_rgb:
            return torch.cat([rgb_weight, mean.expand(-1, 3 * self.new_length, -1, -1)], dim=1)
        return mean.expand(-1, self.in_channels, -1, -1).contiguous()

    def load_backbone_weights(self, path: str | Path) -> list[str]:
        """Load torchvision-layout ResNet weights (e.g. ImageNet) from a local file.

        The file is read with ``torch.load(weights_only=True)``; a plain state_dict, or one under
        ``"state_dict"``/``"model"``, with or without a ``module.`` prefix. The ImageNet
        classifier (``fc.*``) is skipped; the first conv is adapted to the modality. Returns the
        skipped keys. Raises ``CheckpointError`` (one sentence) on anything unusable.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights file not found")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refused or corrupt file
            raise CheckpointError(
                f"{path}: not a loadable weights file (only plain tensors are accepted: "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        if isinstance(data, dict):
            for key in ("state_dict", "model"):
                if isinstance(data.get(key), dict):
                    data = data[key]
                    break
        if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
            raise CheckpointError(f"{path}: expected a ResNet state_dict of tensors")
        state = {k.removeprefix("module."): v for k, v in data.items()}
        skipped = sorted(k for k in state if k.startswith("fc."))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        conv1 = state.get("conv1.weight")
        if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 3:
            state["conv1.weight"] = self.first_conv_from_rgb(conv1)
        own = {k: v for k, v in self.base_model.state_dict().items() if not k.startswith("fc.")}
        arch = self.init_kwargs["backbone"]
        if self.base_model.stem != "imagenet":
            raise CheckpointError(
                f"{path}: ImageNet ResNet weights need the 'imagenet' stem, this teacher uses "
                f"the '{self.base_model.stem}' stem"
            )
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
            raise CheckpointError(
                f"{path}: does not match a torchvision {arch} ({detail}); "
                f"pass the weights of the same ResNet depth"
            )
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise CheckpointError(
                    f"{path}: {key} has shape {tuple(value.shape)} but this {arch} at width "
                    f"{self.init_kwargs['width']} needs {tuple(own[key].shape)}; ImageNet weights "
                    f"fit width 1.0 only"
                )
        self.base_model.load_state_dict(state, strict=False)
        return skipped

    def input_spec(self, **overrides: Any) -> TSNInputSpec:
        """The input pipeline's spec for this model's modality and snippet length."""
        fields = {
            "modality": self.modality,
            "num_segments": self.num_segments,
            "new_length": self.new_length,
            "keep_rgb": self.keep_rgb,
        }
        fields.update(overrides)
        return TSNInputSpec(**fields)


# ---------------------------------------------------------------------------------------------
# Input pipeline
@dataclass(frozen=True)
class TSNInputSpec:
    """How a clip's frames become the teacher's input. Defaults are TSN's (ImageNet-sized).

    Attributes:
        modality, new_length, keep_rgb: as the model (new_length None = modality default).
        num_segments: K segments sampled per clip.
        scale_size: test time: resize the shorter side to this (None: keep the size).
        crop_size: side of the square network input (224 for ImageNet ResNets).
        scales: training: multi-scale crop, crop side = scale * shorter side (TSN's
            GroupMultiScaleCrop scales), at a random position, then resized to crop_size.
        flip: training: random horizontal flip (flow: x values are inverted as well).
    """

    modality: Modality = "rgb"
    num_segments: int = 3
    new_length: int | None = None
    keep_rgb: bool = False
    scale_size: int | None = 256
    crop_size: int = 224
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    flip: bool = True

    def __post_init__(self) -> None:
        _check_modality(self.modality)
        if self.new_length is None:
            object.__setattr__(self, "new_length", DEFAULT_NEW_LENGTH[self.modality])
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if self.num_segments < 1 or self.new_length < 1 or self.crop_size < 1:
            raise ValueError("num_segments, new_length and crop_size must be positive")
        if not self.scales or not all(0 < s <= 1 for s in self.scales):
            raise ValueError(f"scales must be in (0, 1], got {self.scales}")

    @property
    def channels(self) -> int:
        return input_channels(self.modality, self.new_length, self.keep_rgb)

    @property
    def span(self) -> int:
        return frames_per_segment(self.modality, self.new_length)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scales"] = list(self.scales)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TSNInputSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TSN input spec field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TSNInputSpec:
        return dataclasses.replace(self, **changes)


def sample_segments(
    num_frames: int,
    num_segments: int,
    span: int = 1,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices (K, span) of each segment's snippet, as TSN samples them.

    Training: a random offset inside each of K equal segments; test: each segment's centre.
    Snippets reaching past the end repeat the last frame.
    """
    if num_frames < 1:
        raise ValueError("the clip has no frames")
    usable = num_frames - span + 1
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        average = usable // num_segments
        if average > 0:
            offsets = np.arange(num_segments) * average + rng.integers(0, average, num_segments)
        elif usable > num_segments:
            offsets = np.sort(rng.integers(0, usable, num_segments))
        else:
            offsets = np.zeros(num_segments, dtype=np.int64)
    else:
        tick = max(usable, 1) / num_segments
        offsets = (tick / 2.0 + tick * np.arange(num_segments)).astype(np.int64)
    idx = offsets[:, None] + np.arange(span)[None, :]
    return np.minimum(idx, num_frames - 1).astype(np.int64)


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return out if out.ndim == 3 else out[..., None]


def _spatial(
    frames: np.ndarray, spec: TSNInputSpec, train: bool, rng: np.random.Generator | None
) -> tuple[np.ndarray, bool]:
    """Crop/resize all frames alike -> (n, crop, crop, ch) uint8 (possibly a view of
    ``frames``), and whether the snippet is to be mirrored (the caller mirrors it while
    normalising, on the small arrays). Only the cropped region of each frame is resized, and the
    results go straight into one array: no full-size copy of the clip is made."""
    n, h, w, ch = frames.shape
    size = spec.crop_size
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        short = min(h, w)
        cw = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        crop_h = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        y0 = int(rng.integers(0, h - crop_h + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        crops = frames[:, y0 : y0 + crop_h, x0 : x0 + cw]
        flipped = bool(spec.flip and rng.random() < 0.5)
        if (crop_h, cw) == (size, size):
            return crops, flipped
        out = np.empty((n, size, size, ch), dtype=frames.dtype)
        for i in range(n):
            out[i] = _resize(crops[i], size, size)
        return out, flipped
    nh, nw = h, w
    if spec.scale_size is not None:
        scale = spec.scale_size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    # a second resize only when the first still leaves the frame smaller than the crop
    nh2, nw2 = max(nh, size), max(nw, size)
    y0, x0 = (nh2 - size) // 2, (nw2 - size) // 2
    if (nh, nw) == (h, w) and (nh2, nw2) == (h, w):
        return frames[:, y0 : y0 + size, x0 : x0 + size], False
    out = np.empty((n, size, size, ch), dtype=frames.dtype)
    for i in range(n):
        resized = _resize(_resize(frames[i], nw, nh), nw2, nh2)
        out[i] = resized[y0 : y0 + size, x0 : x0 + size]
    return out, False


@functools.lru_cache(maxsize=8)
def _normalise_tables(modality: str, flipped: bool) -> tuple[np.ndarray, ...]:
    """Per channel, the normalised float32 value of each uint8 level (256 entries): exactly what
    ``(float32(q) / 255 - mean) / std`` gives, so looking values up (one pass, ~10x faster than
    the float arithmetic over the snippet) changes no bit of the input. A mirrored flow snippet
    reads x through 255 - q (mirroring reverses horizontal motion)."""
    q = np.arange(256, dtype=np.float32)
    if modality == "flow":
        x = 255.0 - q if flipped else q
        return tuple(((v / 255.0 - FLOW_MEAN) / FLOW_STD).astype(np.float32) for v in (x, q))
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    return tuple(((q / 255.0 - mean[c]) / std[c]).astype(np.float32) for c in range(3))


def teacher_input(
    frames: np.ndarray,
    spec: TSNInputSpec,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """One clip's frames -> the teacher's input (K, C, crop, crop) float32.

    ``frames``: uint8 (T, H, W, 3) RGB for "rgb"/"rgbdiff"; uint8 (T, H, W, 2) quantised flow
    (x, y) for "flow". Training draws segment offsets, crop and flip from ``rng``.
    """
    frames = np.asarray(frames)
    want = 2 if spec.modality == "flow" else 3
    if frames.ndim != 4 or frames.shape[-1] != want:
        raise ValueError(
            f"{spec.modality} input needs frames (T, H, W, {want}), got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 images, got {frames.dtype}")
    if train and rng is None:
        rng = np.random.default_rng()
    idx = sample_segments(frames.shape[0], spec.num_segments, spec.span, train, rng)
    return snippets_input(frames[idx.reshape(-1)], spec, train, rng)


def snippets_input(
    snippets: np.ndarray,
    spec: TSNInputSpec,
    train: bool = False,
    rng: np.random.Generator | None = None,
    bgr: bool = False,
) -> torch.Tensor:
    """The second half of :func:`teacher_input`: the frames at ``sample_segments``' indices
    (K * span of them, in that order) -> the teacher's input. A reader that decodes only those
    frames (packed NTU videos) calls ``sample_segments`` and then this with the same ``rng``,
    and gets what ``teacher_input`` gives for the whole clip. ``bgr``: the frames are in
    OpenCV's BGR order (as decoded); they are swapped to RGB on the cropped arrays, which
    spares a copy of every full-size frame."""
    snippets = np.asarray(snippets)
    want = 2 if spec.modality == "flow" else 3
    if train and rng is None:
        rng = np.random.default_rng()
    k, span = spec.num_segments, spec.span
    if snippets.shape[0] != k * span:
        raise ValueError(f"expected {k * span} sampled frames (K x span), got {snippets.shape[0]}")
    if snippets.ndim != 4 or snippets.shape[-1] != want or snippets.dtype != np.uint8:
        raise ValueError(
            f"{spec.modality} input needs uint8 frames (n, H, W, {want}), got "
            f"{snippets.dtype} {snippets.shape}"
        )
    if bgr and want != 3:
        raise ValueError("bgr applies to RGB frames only")
    snippet, flipped = _spatial(snippets, spec, train, rng)
    s = spec.crop_size
    # uint8 (K, span, ch, s, s), channel-first, mirrored and in RGB order: one small copy
    u = snippet.reshape(k, span, s, s, want).transpose(0, 1, 4, 2, 3)
    if bgr:
        u = u[:, :, ::-1]
    if flipped:
        u = u[..., ::-1]
    u = np.ascontiguousarray(u)
    x = np.empty((k, span, want, s, s), dtype=np.float32)
    tables = _normalise_tables(spec.modality, flipped)
    for i in np.ndindex(k, span):  # each (s, s) plane is contiguous: looked up in place
        for c, table in enumerate(tables):
            cv2.LUT(u[i][c], table, dst=x[i][c])
    if spec.modality == "rgbdiff":
        lead = 1 if spec.keep_rgb else 0
        out = np.empty((k, lead + span - 1, want, s, s), dtype=np.float32)
        if lead:
            out[:, 0] = x[:, 0]
        np.subtract(x[:, 1:], x[:, :-1], out=out[:, lead:])
        x = out
    # (K, L, ch, H, W) -> (K, L*ch, H, W): channels ordered per snippet item (x1, y1, x2, ...).
    return torch.from_numpy(x.reshape(k, -1, s, s))
