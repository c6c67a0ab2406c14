"""xmkd's own TSN teacher checkpoints (``xmkd teacher train``) as a :class:`VideoTeacher`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmkd.teachers import VideoTeacher


def open_tsn_teacher(path: str | Path, **_: Any) -> VideoTeacher:
    """The TSN of an xmkd teacher checkpoint, reading clips through its stored input spec."""
    from xmkd.checkpoint import load_teacher
    from xmkd.models.tsn import TSNInputSpec
    from xmkd.train.inputs import TeacherClips

    model, meta = load_teacher(path)
    spec = TSNInputSpec.from_dict(meta.input_spec)
    return VideoTeacher(
        model=model,
        class_names=list(meta.class_names),
        inputs=lambda raw: TeacherClips(raw, spec, train=False),
        modality=meta.modality,
        kind="xmkd",
        source=str(path),
        info={"arch": meta.arch, "input_spec": spec.to_dict()},
    )
