"""Open-vocabulary video teachers: X-CLIP and CLIP (Hugging Face transformers) scoring text prompts.

``xmkd label --teacher xclip:MODEL`` / ``clip:MODEL`` opens MODEL, a local folder written by
``save_pretrained`` (model, tokenizer and image processor side by side) or a hub id already in the
Hugging Face cache (a machine with internet downloads it once), and scores each clip against the
target actions' prompts; the teacher's classes are the target actions themselves, in the order the
prompts were given.

Text side, computed once when the teacher opens: every prompt is tokenised (truncated to the text
encoder's length) and embedded by the text encoder and its projection.

Video side, per clip (:class:`FrameClips`, in the data loader): frames sampled uniformly over the
clip (each of N equal segments' centre frame), each preprocessed by the model's own image
processor (its resize, centre crop, rescale, mean and std as saved with the model): a float tensor
(N, 3, H, W), the same shape for every clip so batches collate.

- X-CLIP reads ``config.vision_config.num_frames`` frames (8 for the base models); its video
  embedding comes from the multi-frame integration transformer, and every prompt's embedding is
  conditioned on the video by the model's prompt generator, exactly as ``XCLIPModel.forward``
  does: with one prompt per action the logits are the model's own ``logits_per_video``.
- CLIP reads ``frames`` frames (default 8), embeds each image, and averages the L2-normalised
  frame embeddings (re-normalised): the clip's direction in the joint space.

Prompt ensembling (CLIP's recipe): an action with several prompts is scored against the mean of
its prompts' L2-normalised embeddings, re-normalised (for X-CLIP after the per-video prompt
conditioning). Logits = ``logit_scale.exp() * cosine similarity / temperature``: temperature 1 is
the model's own learned scale (100 for the released CLIP and X-CLIP weights); a larger
temperature softens the teacher's distribution. ``dtype="bfloat16"`` autocasts the video side to
bfloat16 (weights and the text embeddings stay float32); the logits are float32 either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from xmkd.errors import XmkdError, require
from xmkd.teachers import VideoTeacher

#: model_type in a model's config.json, by teacher kind
MODEL_TYPES = {"xclip": "xclip", "clip": "clip"}
DTYPES = ("float32", "bfloat16")
#: prompts embedded per text-encoder batch when the teacher opens
TEXT_BATCH = 256


# ---- prompts ----------------------------------------------------------------------------------
def check_prompts(prompts: Mapping[str, Sequence[str] | str], where: str) -> dict[str, list[str]]:
    """``prompts`` as an ordered dict action -> non-empty list of non-blank prompt strings.

    A bare string stands for one prompt. Empty prompts, or an action without one, are an
    XmkdError naming ``where`` (the teacher spec).
    """
    if not isinstance(prompts, Mapping) or not prompts:
        raise XmkdError(
            f"{where}: no target actions were given; an open-vocabulary teacher scores the "
            "actions' text prompts (give --classes MAP or --actions 'name, name, ...')"
        )
    checked: dict[str, list[str]] = {}
    for action, texts in prompts.items():
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not str(action).strip():
            raise XmkdError(f"{where}: a target action has an empty name")
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise XmkdError(
                f"{where}: action {action!r} has no prompt (or an empty one); give each action "
                "at least one text prompt such as 'a person drinking water'"
            )
        checked[str(action)] = [t.strip() for t in texts]
    return checked


def ensemble_prompts(embeds: torch.Tensor, owner: torch.Tensor, actions: int) -> torch.Tensor:
    """Per action, the mean of its prompts' L2-normalised embeddings, re-normalised.

    ``embeds``: (..., P, D) prompt embeddings; ``owner``: (P,) the action index of each prompt.
    Returns (..., actions, D) unit vectors. (The sum has the mean's direction.)
    """
    unit = nn.functional.normalize(embeds, dim=-1)
    summed = unit.new_zeros(*unit.shape[:-2], actions, unit.shape[-1])
    summed.index_add_(unit.dim() - 2, owner, unit)
    return nn.functional.normalize(summed, dim=-1)


# ---- video side -------------------------------------------------------------------------------
def uniform_frame_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices spread uniformly over a clip of ``num_frames`` frames: each of
    ``count`` equal segments' centre frame (TSN's test-time sampling); short clips repeat frames."""
    from xmkd.models.tsn import sample_segments

    return sample_segments(num_frames, count, span=1, train=False).reshape(-1)


def preprocess_frames(image_processor: Any, frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> (N, 3, h, w) float32, by the model's image processor."""
    out = image_processor(list(frames), return_tensors="pt", input_data_format="channels_last")[
        "pixel_values"
    ]
    # X-CLIP's video processor returns (1, N, 3, h, w) for one video, CLIP's (N, 3, h, w)
    return out.reshape(len(frames), *out.shape[-3:]).float()


class FrameClips(Dataset):
    """Items ``(frames (N, 3, H, W) float32, label, index)`` of a raw video dataset: ``N`` frames
    sampled uniformly over each clip, preprocessed by the model's image processor."""

    def __init__(
        self, base: Any, frames: int, image_processor: Any, frame_shape: tuple[int, ...]
    ) -> None:
        self.base = base
        self.frames = int(frames)
        self.image_processor = image_processor
        self.frame_shape = tuple(frame_shape)
        self.names: list[str] = list(base.names)
        self.labels = np.asarray(base.labels, dtype=np.int64)
        self.class_names = getattr(base, "class_names", None)

    def __len__(self) -> int:
        return len(self.base)

    def sampled_frames(self, index: int) -> np.ndarray:
        """The uint8 RGB frames (N, H, W, 3) the teacher sees of clip ``index``."""
        count = self.base.frame_count(index)
        if count <= 0:
            raise XmkdError(f"clip {self.names[index]} has no frames")
        # read_frames decodes only these frames where it can (packed NTU: ~8 of ~100)
        video = np.asarray(self.base.read_frames(index, uniform_frame_indices(count, self.frames)))
        if video.ndim != 4 or video.shape[-1] != 3:
            raise XmkdError(
                f"clip {self.names[index]}: expected RGB frames (T, H, W, 3), got an array of "
                f"shape {video.shape}"
            )
        return video

    def __getitem__(self, index: int):
        x = preprocess_frames(self.image_processor, self.sampled_frames(index))
        if tuple(x.shape[1:]) != self.frame_shape:
            raise XmkdError(
                f"clip {self.names[index]}: the model's image processor made {tuple(x.shape[1:])} "
                f"frames, not the {self.frame_shape} of other clips; save the processor with a "
                "centre crop (crop_size) so every frame has the model's input size"
            )
        return x, int(self.labels[index]), int(index)


# ---- the scoring modules ----------------------------------------------------------------------
def _autocast(dtype: str) -> torch.dtype | None:
    return torch.bfloat16 if dtype == "bfloat16" else None


class _PromptScorer(nn.Module):
    """Common part: the model, the prompts' text embeddings (buffers, moved with the module) and
    which action each prompt belongs to."""

    def __init__(
        self,
        model: nn.Module,
        text_embeds: torch.Tensor,
        owner: torch.Tensor,
        actions: int,
        temperature: float,
        dtype: str,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("text_embeds", text_embeds, persistent=False)
        self.register_buffer("owner", owner, persistent=False)
        self.actions = int(actions)
        self.temperature = float(temperature)
        self.autocast = _autocast(dtype)

    def scale(self) -> torch.Tensor:
        """``logit_scale.exp() / temperature``: the factor on the cosine similarities."""
        return self.model.logit_scale.float().exp() / self.temperature

    def _precision(self, device_type: str) -> Any:
        from xmkd.train.distill import in_precision

        return in_precision(self.autocast, device_type)


class XCLIPScorer(_PromptScorer):
    """``(B, T, 3, H, W)`` preprocessed frames -> ``(B, actions)`` X-CLIP logits.

    The steps of ``XCLIPModel.forward`` with the text embeddings computed once: the prompts are
    conditioned on each video by the prompt generator, then ensembled per action.
    """

    def video_and_prompts(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The video embeddings (B, D) and the video-conditioned prompt embeddings (B, P, D)."""
        m = self.model
        b, t = pixel_values.shape[:2]
        # [0], [1]: last_hidden_state and pooler_output, indexed as XCLIPModel.forward does
        vision = m.vision_model(pixel_values=pixel_values.reshape(b * t, *pixel_values.shape[2:]))
        frame_embeds = m.visual_projection(vision[1]).view(b, t, -1)
        video = m.mit(frame_embeds)[1]
        patches = m.prompts_visual_layernorm(vision[0][:, 1:, :]) @ m.prompts_visual_projection
        patches = patches.view(b, t, -1, video.shape[-1]).mean(dim=1)
        text = self.text_embeds.unsqueeze(0).expand(b, -1, -1)
        text = text + m.prompts_generator(text, patches)
        return video, text

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with self._precision(pixel_values.device.type):
            video, text = self.video_and_prompts(pixel_values)
        video = nn.functional.normalize(video.float(), dim=-1)
        text = ensemble_prompts(text.float(), self.owner, self.actions)
        return self.scale() * torch.einsum("bd,bkd->bk", video, text)


class CLIPScorer(_PromptScorer):
    """``(B, T, 3, H, W)`` preprocessed frames -> ``(B, actions)`` CLIP logits of the frames'
    mean embedding (``text_embeds`` here: the ensembled unit vectors per action)."""

    def video_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, D): the normalised mean of the frames' normalised image embeddings."""
        m = self.model
        b, t = pixel_values.shape[:2]
        with self._precision(pixel_values.device.type):
            pooled = m.vision_model(
                pixel_values=pixel_values.reshape(b * t, *pixel_values.shape[2:])
            )[1]
            frames = m.visual_projection(pooled)
        frames = nn.functional.normalize(frames.float(), dim=-1).view(b, t, -1)
        return nn.functional.normalize(frames.mean(dim=1), dim=-1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.scale() * self.video_embeds(pixel_values) @ self.text_embeds.T


# ---- opening ----------------------------------------------------------------------------------
def _looks_like_path(model: str) -> bool:
    """A string that can only be a folder (hub ids are ``name`` or ``org/name``)."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def _from_pretrained(load: Any, source: str) -> Any:
    """``load(source)`` from the local files first: a folder or a cached hub model opens without
    the network (no request that waits out a missing connection); one not cached is downloaded."""
    try:
        return load(source, local_files_only=True)
    except OSError:
        return load(source)


def load_pretrained(kind: str, model: str) -> tuple[nn.Module, Any]:
    """The transformers model (eval mode) and processor of ``model`` (folder or cached hub id)."""
    where = f"--teacher {kind}:{model}"
    transformers = require("transformers", "teachers", f"the {kind} teacher")
    folder = Path(model).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise XmkdError(
                f"{where}: the folder {folder} holds no model (config.json is missing); give a "
                "folder written by save_pretrained (model, tokenizer and image processor), or "
                "a Hugging Face hub id such as microsoft/xclip-base-patch32"
            )
        source = str(folder)
    elif _looks_like_path(model):
        raise XmkdError(f"{where}: no such folder {folder}")
    else:
        source = model
    try:
        config = _from_pretrained(transformers.AutoConfig.from_pretrained, source)
    except (OSError, ValueError) as exc:
        raise XmkdError(
            f"{where}: {model} is neither a model folder nor a hub id in the local Hugging Face "
            f"cache ({str(exc).splitlines()[0]}); download it once with internet (it stays in "
            "the cache), or give a local folder written by save_pretrained"
        ) from exc
    if config.model_type != MODEL_TYPES[kind]:
        other = next((k for k, t in MODEL_TYPES.items() if t == config.model_type), None)
        hint = f"; open it as {other}:{model}" if other else ""
        raise XmkdError(
            f"{where}: {model} is a '{config.model_type}' model, not "
            f"{'X-CLIP' if kind == 'xclip' else 'CLIP'}{hint}"
        )
    model_class = transformers.XCLIPModel if kind == "xclip" else transformers.CLIPModel
    try:
        net = _from_pretrained(model_class.from_pretrained, source)
    except (OSError, ValueError) as exc:
        raise XmkdError(
            f"{where}: the weights of {model} cannot be loaded ({str(exc).splitlines()[0]}); "
            "download the model again or give a folder written by save_pretrained"
        ) from exc
    try:
        processor = _from_pretrained(transformers.AutoProcessor.from_pretrained, source)
        tokenizer, image_processor = processor.tokenizer, processor.image_processor
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise XmkdError(
            f"{where}: {model} has no usable tokenizer and image processor "
            f"({str(exc).splitlines()[0]}); save the model's processor beside it "
            "(processor.save_pretrained(FOLDER))"
        ) from exc
    return net.eval(), (tokenizer, image_processor)


@torch.no_grad()
def _text_embeds(model: nn.Module, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """(P, D) projected text embeddings of ``texts`` (float32, not normalised)."""
    max_length = int(model.config.text_config.max_position_embeddings)
    out = []
    for start in range(0, len(texts), TEXT_BATCH):
        tokens = tokenizer(
            texts[start : start + TEXT_BATCH],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        pooled = model.text_model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )[1]
        out.append(model.text_projection(pooled).float())
    return torch.cat(out)


def _frame_shape(image_processor: Any, image_size: int, where: str) -> tuple[int, int, int]:
    """The (3, H, W) the processor makes of a frame; it must be the model's input size."""
    probe = np.zeros((1, 2 * image_size, 3 * image_size, 3), dtype=np.uint8)
    shape = tuple(preprocess_frames(image_processor, probe).shape[1:])
    if shape != (3, image_size, image_size):
        raise XmkdError(
            f"{where}: the saved image processor makes {shape} frames but the model reads "
            f"(3, {image_size}, {image_size}); save the processor that belongs to the model"
        )
    return shape  # type: ignore[return-value]


def _check_options(where: str, weights: Any, temperature: float, dtype: str) -> None:
    if weights is not None:
        raise XmkdError(
            f"{where}: --weights is for torchvision:ARCH teachers; an X-CLIP/CLIP model folder "
            "or hub id holds its own weights"
        )
    if not (
        isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0
    ):
        raise XmkdError(f"{where}: --temperature must be a positive number, not {temperature!r}")
    if dtype not in DTYPES:
        raise XmkdError(f"{where}: --dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def _open(
    kind: str,
    model: str | Path,
    prompts: Mapping[str, Sequence[str] | str],
    weights: Any,
    temperature: float,
    frames: int | None,
    dtype: str,
) -> VideoTeacher:
    model = str(model)
    where = f"--teacher {kind}:{model}"
    _check_options(where, weights, temperature, dtype)
    prompts = check_prompts(prompts, where)
    net, (tokenizer, image_processor) = load_pretrained(kind, model)
    vision_config = net.config.vision_config
    if kind == "xclip":
        expected = int(vision_config.num_frames)
        if frames is not None and int(frames) != expected:
            raise XmkdError(
                f"{where}: this X-CLIP model reads {expected} frames per clip (its "
                f"vision_config.num_frames), not {frames}; leave the frame count unset"
            )
        frames = expected
    elif frames is None or int(frames) < 1:
        raise XmkdError(f"{where}: the number of frames per clip must be at least 1, not {frames}")
    frames = int(frames)
    frame_shape = _frame_shape(image_processor, int(vision_config.image_size), where)

    texts = [t for texts in prompts.values() for t in texts]
    owner = torch.tensor(
        [a for a, texts in enumerate(prompts.values()) for _ in texts], dtype=torch.long
    )
    embeds = _text_embeds(net, tokenizer, texts)
    if kind == "xclip":  # conditioned on each video, ensembled after that (in forward)
        scorer: _PromptScorer = XCLIPScorer(net, embeds, owner, len(prompts), temperature, dtype)
    else:
        ensembled = ensemble_prompts(embeds, owner, len(prompts))
        scorer = CLIPScorer(net, ensembled, owner, len(prompts), temperature, dtype)
    scorer.eval()
    logit_scale = float(net.logit_scale.detach().float().exp())
    return VideoTeacher(
        model=scorer,
        class_names=list(prompts),
        inputs=lambda raw: FrameClips(raw, frames, image_processor, frame_shape),
        modality="rgb",
        kind=kind,
        source=f"{kind}:{model}",
        open_vocabulary=True,
        info={
            "model": model,
            "frames": frames,
            "frame_size": list(frame_shape[1:]),
            "prompts": {action: list(texts) for action, texts in prompts.items()},
            "temperature": float(temperature),
            "logit_scale": logit_scale,
            "dtype": dtype,
            "sampling": "uniform (segment centres)",
            "ensembling": "mean of L2-normalised prompt embeddings, re-normalised",
        },
    )


def open_xclip_teacher(
    model: str | Path,
    prompts: Mapping[str, Sequence[str] | str],
    weights: Any = None,
    temperature: float = 1.0,
    frames: int | None = None,
    dtype: str = "float32",
    **_: Any,
) -> VideoTeacher:
    """An X-CLIP teacher (``xclip:MODEL``) scoring ``prompts`` (action -> its prompts).

    ``frames``: must be the model's ``vision_config.num_frames`` when given (the default).
    See the module docstring for the logits, the ensembling and ``temperature``/``dtype``.
    """
    return _open("xclip", model, prompts, weights, temperature, frames, dtype)


def open_clip_teacher(
    model: str | Path,
    prompts: Mapping[str, Sequence[str] | str],
    weights: Any = None,
    temperature: float = 1.0,
    frames: int = 8,
    dtype: str = "float32",
    **_: Any,
) -> VideoTeacher:
    """A CLIP teacher (``clip:MODEL``): ``frames`` frames per clip, their embeddings averaged,
    scored against ``prompts`` (action -> its prompts). See the module docstring."""
    return _open("clip", model, prompts, weights, temperature, frames, dtype)
