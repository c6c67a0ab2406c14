"""Pretrained Kinetics-400 video classifiers of torchvision as teachers (``torchvision:ARCH``).

The network is torchvision's own code (:mod:`torchvision.models.video`); its 400 Kinetics class
names and its input pipeline come from torchvision's weight metadata, so a clip reaches the
network as it did when torchvision measured the weights' accuracy:

* temporal: the clip is resampled from its frame rate (``raw.fps(i)``, 30 when unknown) to the
  weights' ``frame_rate`` as torchvision's ``VideoClips`` does (output frame ``k`` is source
  frame ``floor(k * fps / frame_rate)``), and ``clip_len`` consecutive resampled frames make a
  clip. With ``clips_per_video`` N the N clips start evenly spaced over the resampled video
  (``floor(linspace(0, frames - clip_len, N))``, torchvision's ``UniformClipSampler``). A video
  shorter than ``clip_len`` resampled frames is looped (frame ``k`` of the clip is resampled
  frame ``k mod frames``): torchvision skips such videos, but NTU-length clips are often shorter
  than S3D's 128 frames at 15 fps, and a loop keeps the motion the network was trained on where
  repeating the last frame would show it a still tail;
* spatial: ``weights.transforms()`` (torchvision's ``VideoClassification``) on the sampled uint8
  frames, with torchvision's own functional ops: resize (antialias off, as that preset), centre
  crop, scale to [0, 1], normalise.

One clip is ``x`` of shape (C, T, H, W); N > 1 clips are (N, C, T, H, W) and the model averages
the clips' softmax probabilities, returning the log of that mean as logits. With one clip the
logits are the network's own (softmax is shift-invariant: the same probabilities).

Weights come from ``--weights FILE`` (a state_dict, or a dict holding one under "state_dict" or
"model", loaded with ``weights_only=True`` and checked key by key against the architecture), or
from torchvision's weight cache (downloaded there once on a machine with internet).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from xmkd.errors import MissingExtraError, XmkdError, require
from xmkd.teachers import VideoTeacher

#: the video classifiers of torchvision.models.video (all Kinetics-400)
ARCHS = (
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "s3d",
    "mvit_v1_b",
    "mvit_v2_s",
    "swin3d_t",
    "swin3d_s",
    "swin3d_b",
)
#: frame rate assumed for a clip whose rate is unknown (NTU RGB+D and most cameras)
DEFAULT_FPS = 30.0
DTYPES = ("float32", "bfloat16")


def _torchvision_models() -> Any:
    """torchvision.models, or one sentence on installing a torchvision that fits this torch."""
    hint = (
        'install it with: pip install "xmkd[teachers]"; torchvision must be the build made for '
        f"the installed torch {torch.__version__} (pip pairs them when both come from PyPI)"
    )
    try:
        return require("torchvision.models", "teachers", "torchvision video teachers", hint)
    except RuntimeError as exc:  # a torchvision built for another torch: its C++ ops are missing
        raise MissingExtraError(
            f"torchvision video teachers: the installed torchvision does not work with torch "
            f"{torch.__version__} ({exc}); {hint}"
        ) from exc


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise XmkdError(
            f"torchvision:{arch}: unknown video architecture; choose one of {', '.join(ARCHS)}"
        )


def weights_enum(arch: str) -> Any:
    """torchvision's weights enum of ``arch`` (e.g. ``R3D_18_Weights``); reading its metadata
    downloads nothing."""
    _check_arch(arch)
    models = _torchvision_models()
    try:
        return models.get_model_weights(arch)
    except ValueError as exc:
        import torchvision

        raise XmkdError(
            f"torchvision:{arch}: torchvision {torchvision.__version__} has no {arch}; "
            "upgrade torchvision (with the matching torch)"
        ) from exc


def build_network(arch: str, device: str | torch.device | None = None) -> nn.Module:
    """torchvision's ``arch`` (400 classes) with its random initialisation, in eval mode.

    ``device="meta"`` builds it without allocating or initialising weights (to load them next).
    """
    _check_arch(arch)
    builder = _torchvision_models().get_model_builder(arch)
    if device is None:
        return builder(weights=None).eval()
    with torch.device(device):
        return builder(weights=None).eval()


@dataclass(frozen=True)
class ClipPipeline:
    """How a video becomes the input of a torchvision video classifier (module docstring)."""

    clip_len: int
    frame_rate: float
    clips_per_video: int
    resize_size: tuple[int, ...]  # (short side,) or (H, W): torchvision's resize semantics
    crop_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"  # a torchvision InterpolationMode value

    @classmethod
    def for_weights(cls, weights: Any, clips_per_video: int = 1) -> ClipPipeline:
        """The pipeline a torchvision weights entry states (``transforms()`` and its ``_docs``)."""
        preset = weights.transforms()
        docs = parse_eval_docs(weights.meta.get("_docs", ""), str(weights))
        return cls(
            clip_len=docs["clip_len"],
            frame_rate=docs["frame_rate"],
            clips_per_video=int(clips_per_video),
            resize_size=tuple(int(s) for s in preset.resize_size),
            crop_size=(int(preset.crop_size[0]), int(preset.crop_size[1])),
            mean=tuple(float(m) for m in preset.mean),
            std=tuple(float(s) for s in preset.std),
            interpolation=str(preset.interpolation.value),
        )

    def clip_indices(self, num_frames: int, fps: float | None) -> np.ndarray:
        """Source frame indices (clips_per_video, clip_len) of a ``num_frames`` video."""
        return sample_clip_indices(
            num_frames, fps, self.frame_rate, self.clip_len, self.clips_per_video
        )

    def spatial(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (T, 3, H, W) RGB -> normalised float (T, 3, crop_h, crop_w), exactly as
        torchvision's ``VideoClassification`` (same functional ops, same order)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        mode = InterpolationMode(self.interpolation)
        x = F.resize(frames, list(self.resize_size), interpolation=mode, antialias=False)
        x = F.center_crop(x, list(self.crop_size))
        x = F.convert_image_dtype(x, torch.float)
        return F.normalize(x, mean=list(self.mean), std=list(self.std))

    def __call__(self, frames: np.ndarray, fps: float | None, name: str = "clip") -> torch.Tensor:
        """uint8 (T, H, W, 3) RGB frames -> (C, T, H, W), or (N, C, T, H, W) for N > 1 clips."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or len(frames) == 0:
            raise XmkdError(f"{name}: the video has no frames ({tuple(frames.shape)})")
        idx = self.clip_indices(len(frames), fps)
        unique, inverse = np.unique(idx, return_inverse=True)
        return self.from_picked(frames[unique], inverse.reshape(idx.shape), name)

    def from_picked(
        self, picked: np.ndarray, inverse: np.ndarray, name: str = "clip"
    ) -> torch.Tensor:
        """The model input from the distinct sampled frames ``picked`` (t, H, W, 3) uint8 RGB,
        ``inverse`` (clips, clip_len) indexing into them (each distinct frame resized once:
        overlapping clips share frames, and only these frames need decoding)."""
        picked = np.asarray(picked)
        if picked.ndim != 4 or picked.shape[-1] != 3 or picked.dtype != np.uint8:
            raise XmkdError(
                f"{name}: expected uint8 RGB frames (T, H, W, 3), got {picked.dtype} "
                f"{tuple(picked.shape)}"
            )
        x = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2).contiguous()
        x = self.spatial(x)[torch.from_numpy(np.asarray(inverse))]  # (N, T, C, h, w)
        x = x.permute(0, 2, 1, 3, 4).contiguous()  # (N, C, T, h, w)
        return x[0] if self.clips_per_video == 1 else x

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("resize_size", "crop_size", "mean", "std"):
            d[key] = list(d[key])
        return d


_DOCS_NUMBER = r"`?{}\s*=\s*([0-9]+(?:\.[0-9]+)?)`?"


def parse_eval_docs(docs: str, where: str = "weights") -> dict[str, Any]:
    """``frame_rate``, ``clips_per_video`` and ``clip_len`` from a torchvision weights entry's
    ``_docs`` ("... with parameters `frame_rate=15`, `clips_per_video=5`, and `clip_len=16`")."""
    found: dict[str, Any] = {}
    for key, kind in (("frame_rate", float), ("clips_per_video", int), ("clip_len", int)):
        match = re.search(_DOCS_NUMBER.format(key), docs)
        if match is None:
            raise XmkdError(
                f"{where}: torchvision's weight metadata no longer states {key} (its _docs "
                "changed); this xmkd cannot tell the clip the weights expect"
            )
        value = float(match.group(1))
        found[key] = int(value) if kind is int else value
    if found["frame_rate"] <= 0 or found["clip_len"] < 1:
        raise XmkdError(f"{where}: implausible frame_rate/clip_len in its metadata ({found})")
    return found


def sample_clip_indices(
    num_frames: int, fps: float | None, frame_rate: float, clip_len: int, clips: int = 1
) -> np.ndarray:
    """Source frame indices (clips, clip_len): resample ``fps`` -> ``frame_rate``, then ``clips``
    windows of ``clip_len`` evenly spaced; a too short video loops (module docstring)."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
    step = fps / float(frame_rate)
    # torchvision's VideoClips._resample_video_idx, in its float32 arithmetic: the same frames
    if step.is_integer():
        resampled = np.arange(0, num_frames, int(step), dtype=np.int64)
    else:
        count = max(1, math.floor(num_frames * float(frame_rate) / fps))
        scaled = torch.arange(count, dtype=torch.float32) * step
        resampled = np.minimum(scaled.floor().to(torch.int64).numpy(), num_frames - 1)
    count = len(resampled)
    if count < clip_len:
        window = resampled[np.arange(clip_len) % count]
        return np.repeat(window[None], clips, axis=0)
    # torchvision's UniformClipSampler over the count - clip_len + 1 clips (one frame apart)
    starts = torch.linspace(0, count - clip_len, steps=clips).floor().to(torch.int64).numpy()
    return resampled[starts[:, None] + np.arange(clip_len)[None]]


class ClipClassifier(nn.Module):
    """A torchvision video network taking one clip per video (B, C, T, H, W) or N clips
    (B, N, C, T, H, W); N > 1 clips' softmax probabilities are averaged and the log of the mean
    returned. ``autocast_dtype`` (bfloat16) runs the network under ``torch.autocast`` on the
    input's device; the logits are float32 either way."""

    def __init__(self, network: nn.Module, autocast_dtype: torch.dtype | None = None):
        super().__init__()
        self.network = network
        self.autocast_dtype = autocast_dtype
        self.eval()

    def _run(self, clips: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.network(clips).float()
        with torch.autocast(device_type=clips.device.type, dtype=self.autocast_dtype):
            return self.network(clips).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return self._run(x)
        if x.dim() != 6:
            shape = tuple(x.shape)
            raise ValueError(f"expected (B, C, T, H, W) or (B, N, C, T, H, W), got {shape}")
        batch, clips = x.shape[:2]
        logits = self._run(x.flatten(0, 1))
        if clips == 1:
            return logits
        log_probs = torch.log_softmax(logits, dim=1).view(batch, clips, -1)
        return torch.logsumexp(log_probs, dim=1) - math.log(clips)  # log of the mean probability


class TorchvisionClips(Dataset):
    """Items ``(x, label, index)`` of a raw video dataset through a :class:`ClipPipeline`."""

    def __init__(self, raw: Any, pipeline: ClipPipeline):
        self.raw = raw
        self.pipeline = pipeline
        self.names: list[str] = list(raw.names)
        self.labels = np.asarray(raw.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        name = self.names[index]
        count = int(self.raw.frame_count(index))
        if count < 1:
            raise XmkdError(f"{name}: the video has no frames")
        idx = self.pipeline.clip_indices(count, self.raw.fps(index))
        unique, inverse = np.unique(idx, return_inverse=True)
        # read_frames decodes only the sampled frames where it can (packed NTU)
        picked = self.raw.read_frames(index, unique)
        x = self.pipeline.from_picked(picked, inverse.reshape(idx.shape), name)
        return x, int(self.labels[index]), int(index)


def _state_dict_of(data: Any, where: str) -> dict[str, torch.Tensor]:
    """The state_dict in a loaded weights file (itself, or under "state_dict"/"model")."""
    if isinstance(data, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data:
        raise XmkdError(f"{where}: holds no state_dict (a dict of parameter name -> tensor)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise XmkdError(f"{where}: is not a state_dict (not every entry is a named tensor)")
    state = dict(data)
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _shown(keys: list[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_network(arch: str, state: Mapping[str, torch.Tensor], where: str) -> nn.Module:
    """torchvision's ``arch`` holding exactly ``state`` (strict: every key, every shape)."""
    network = build_network(arch, device="meta")  # no random init for weights overwritten next
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        what = []
        if missing:
            what.append(f"missing keys {_shown(missing)}")
        if unexpected:
            what.append(f"unexpected keys {_shown(unexpected)}")
        if reshaped:
            what.append(f"other shapes {_shown(reshaped, 2)}")
        raise XmkdError(
            f"{where}: holds weights of another architecture than torchvision {arch}: "
            + "; ".join(what)
        )
    cast = {k: state[k].to(device="cpu", dtype=v.dtype).contiguous() for k, v in expected.items()}
    network.load_state_dict(cast, strict=True, assign=True)
    left = [n for n, t in (*network.named_parameters(), *network.named_buffers()) if t.is_meta]
    if left:  # a tensor the state_dict does not hold (a torchvision change): say so
        raise XmkdError(f"torchvision {arch}: {_shown(left)} are not in its state_dict")
    for p in network.parameters():
        p.requires_grad_(False)
    return network.eval()


def _cached_state_dict(arch: str, weights: Any) -> dict[str, torch.Tensor]:
    """torchvision's pretrained weights from its cache, downloading them when missing."""
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # offline (URLError, OSError), a broken cached file, a bad hash
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise XmkdError(
            f"torchvision:{arch}: its pretrained weights ({weights.url}) are not in torchvision's "
            f"cache {cache} and could not be downloaded ({type(exc).__name__}: "
            f"{str(exc)[:120]}); give --weights FILE (that file, fetched elsewhere) or run once "
            "with internet"
        ) from exc


def open_torchvision_teacher(
    arch: str,
    weights: str | Path | None = None,
    clips_per_video: int = 1,
    dtype: str = "float32",
    random_init: bool = False,
    **_: Any,
) -> VideoTeacher:
    """torchvision's ``arch`` video classifier as a Kinetics-400 teacher.

    Args:
        arch: one of :data:`ARCHS`.
        weights: a state_dict file of that architecture; None: torchvision's pretrained
            weights (its cache; downloaded there once with internet).
        clips_per_video: clips per video whose probabilities are averaged (module docstring).
        dtype: "float32" or "bfloat16" (the network under ``torch.autocast``; float32 logits).
            bfloat16 is for CUDA (and CPUs with AVX512-BF16/AMX): on a CPU without them its
            3D convolutions run several times slower than float32 (measured: 6x, r3d_18).
        random_init: torchvision's random initialisation instead of any weights (tests and
            benchmarks: its labels mean nothing).
    """
    _check_arch(arch)
    if dtype not in DTYPES:
        raise XmkdError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if isinstance(clips_per_video, bool) or int(clips_per_video) != clips_per_video:
        raise XmkdError(f"--clips-per-video must be a whole number, got {clips_per_video!r}")
    if clips_per_video < 1:
        raise XmkdError(f"--clips-per-video must be at least 1, got {clips_per_video}")
    if random_init and weights is not None:
        raise XmkdError(f"torchvision:{arch}: give --weights or a random initialisation, not both")
    pretrained = weights_enum(arch).DEFAULT
    pipeline = ClipPipeline.for_weights(pretrained, int(clips_per_video))
    if random_init:
        network = build_network(arch)
        origin = "random initialisation"
    elif weights is not None:
        from xmkd.checkpoint import safe_torch_load

        path = Path(weights)
        where = f"--weights {path}"
        state = _state_dict_of(safe_torch_load(path), where)
        network = load_network(arch, state, where)
        origin = f"weights {path}"
    else:
        state = _cached_state_dict(arch, pretrained)
        network = load_network(arch, state, f"torchvision {pretrained}")
        origin = f"torchvision {pretrained}"
    model = ClipClassifier(network, torch.bfloat16 if dtype == "bfloat16" else None)
    docs = parse_eval_docs(pretrained.meta.get("_docs", ""), str(pretrained))
    info = {
        "arch": arch,
        "weights": origin,
        "dtype": dtype,
        **pipeline.to_dict(),
        "short_clips": "looped",
        "clips_per_video_of_published_accuracy": docs["clips_per_video"],
    }
    return VideoTeacher(
        model=model,
        class_names=list(pretrained.meta["categories"]),
        inputs=lambda raw: TorchvisionClips(raw, pipeline),
        modality="rgb",
        kind="torchvision",
        source=f"torchvision:{arch} ({origin})",
        open_vocabulary=False,
        info=info,
    )
