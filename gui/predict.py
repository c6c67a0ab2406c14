"""Clip-level prediction for the Replay tab, through the engines' backends.

A model is a students checkpoint or an exported ONNX file (``engines.backends.ModelSource``),
run by the backend the user picks (``engines.backends.open_backend``: auto, torch, onnxruntime,
tensorrt). A clip becomes the model input exactly as everywhere else
(``engines.backends.ModelSource.prepare``): bodies chosen by ``xmkd.ntu.to_model_array`` with the
rule and count the training data used (the checkpoint's stream entry), then
``xmkd.preprocess.prepare_window`` (test mode). Choosing only ``num_persons`` bodies here, as this
module once did, picked a different body than training whenever a clip had a spurious one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class ClipPredictor:
    """Loads the model once (call it off the UI thread); ``predict(seq)`` -> probabilities."""

    def __init__(self, path: str | Path, backend: str = "auto"):

        from engines.backends import ModelSource, open_backend
        from gui.workers import leave_a_core_for_the_ui
        from xmkd.errors import XmkdError

        leave_a_core_for_the_ui()
        path = Path(path)
        if not path.is_file():
            raise XmkdError(f"{path}: no such model file (a students checkpoint or an .onnx)")
        if path.suffix == ".onnx":
            self.source = ModelSource.from_onnx(path)
        else:
            self.source = ModelSource.from_checkpoint(path)
        self.backend = open_backend(backend, self.source)
        self.path = path
        self.class_names: list[str] = list(self.source.class_names)
        spec = self.source.spec
        self.description = (
            f"{path.name}: {self.backend.name}, {len(self.class_names)} classes, "
            f"window {spec.window} ({spec.fit})"
        )

    def predict(self, sequence: Any) -> np.ndarray:
        """Ensemble probabilities (classes,) for one ``xmkd.ntu.SkeletonSequence``."""
        window = self.source.prepare(sequence)
        return np.asarray(self.backend.classify(window[None])[0], dtype=np.float64)
