"""Video teachers: anything that turns the unlabeled pairs' videos into class scores.

``xmkd label --teacher SPEC`` opens a teacher with :func:`open_teacher` and runs it once over the
videos (:func:`xmkd.train.label.label_dataset`); distillation only ever sees the cached scores.
A teacher is a :class:`VideoTeacher`: a module mapping a batch of its inputs to logits over its
own classes, the dataset wrapper that turns raw clips into those inputs (its own input pipeline),
and what it reads (RGB frames or stored flow). SPEC is one of

``PATH``                 an xmkd TSN checkpoint (``xmkd teacher train``): :mod:`xmkd.teachers.tsn`
``torchvision:ARCH``     a torchvision video classifier (Kinetics-400 classes), weights from
                         ``--weights FILE`` or torchvision's cache
                         (:mod:`xmkd.teachers.torchvision_video`)
``xclip:MODEL``          an X-CLIP video-text model (a local folder or a Hugging Face hub id)
``clip:MODEL``           a CLIP image-text model averaged over sampled frames
                         (open-vocabulary: the class map's prompts are the classes):
                         :mod:`xmkd.teachers.openvocab`

Closed-set teachers score their own classes; a class map (:mod:`xmkd.classmap`) then sums them
into the target actions. Open-vocabulary teachers score the target actions' prompts directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from xmkd.errors import XmkdError

#: spec prefixes of the teachers that are not xmkd checkpoints
KINDS = ("torchvision", "xclip", "clip")


@dataclass
class VideoTeacher:
    """A teacher ready to label videos.

    Attributes:
        model: ``model(batch) -> logits (B, len(class_names))``, in eval mode.
        class_names: the classes the logits score (a closed-set teacher's own vocabulary; for an
            open-vocabulary teacher the target actions whose prompts it was given).
        inputs: ``inputs(raw_videos) -> Dataset`` of ``(x, label, index)`` items, ``x`` one clip
            as the model takes it (the teacher's own input pipeline); ``raw_videos`` is a
            :class:`xmkd.data.VideoDataset` or a packed NTU video part
            (``.frame_count(i)``, ``.read_frames(i, indices)`` uint8 (N, H, W, 3) RGB decoding
            only those frames where it can, ``.fps(i)`` or None, ``.names``, ``.labels``).
        modality: what it reads from the sessions: "rgb" (also for RGB differences) or "flow".
        kind: "xmkd", "torchvision", "xclip" or "clip".
        source: where it came from (checkpoint path, "torchvision:r3d_18 (weights FILE)", ...).
        open_vocabulary: its classes are text prompts (no class map of teacher classes needed).
        info: facts for the label cache and the report (input pipeline, weights, prompts).
    """

    model: nn.Module
    class_names: list[str]
    inputs: Callable[[Any], Dataset]
    modality: str = "rgb"
    kind: str = "xmkd"
    source: str = ""
    open_vocabulary: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def teacher_kind(spec: str) -> str:
    """ "xmkd" for a checkpoint path, else the spec's prefix ("torchvision", "xclip", "clip")."""
    head, sep, _ = spec.partition(":")
    if sep and head in KINDS:
        return head
    return "xmkd"


def open_teacher(
    spec: str,
    weights: str | Path | None = None,
    prompts: dict[str, list[str]] | None = None,
    **options: Any,
) -> VideoTeacher:
    """Open the teacher named by ``spec`` (see the module docstring).

    ``weights``: a state_dict file for ``torchvision:ARCH``; ``prompts``: target action name ->
    its text prompts, required by the open-vocabulary kinds; ``options`` go to the kind's opener
    (e.g. ``clips_per_video``, ``temperature``, ``dtype``).
    """
    kind = teacher_kind(spec)
    name = spec.partition(":")[2] if kind != "xmkd" else spec
    if not name:
        raise XmkdError(f"--teacher {spec!r}: name the model after '{kind}:'")
    if kind == "xmkd":
        from xmkd.teachers.tsn import open_tsn_teacher

        if weights is not None:
            raise XmkdError(
                "--weights is for torchvision:ARCH teachers; an xmkd checkpoint holds its own"
            )
        return open_tsn_teacher(name, **options)
    if kind == "torchvision":
        from xmkd.teachers.torchvision_video import open_torchvision_teacher

        return open_torchvision_teacher(name, weights=weights, **options)
    if not prompts:
        raise XmkdError(
            f"--teacher {spec}: an open-vocabulary teacher needs the target actions' prompts: "
            "give --classes MAP (a class map with prompts) or --actions 'name, name, ...'"
        )
    from xmkd.teachers.openvocab import open_clip_teacher, open_xclip_teacher

    opener = open_xclip_teacher if kind == "xclip" else open_clip_teacher
    return opener(name, prompts, weights=weights, **options)
