"""Names the command line offers for engines and smoothing, kept free of heavy imports so
``xmkd --help`` stays fast (the implementations live in backends.py and streaming.py)."""

from __future__ import annotations

#: The order ``auto`` tries, best first (see engines.backends for why).
AUTO_ORDER: tuple[str, ...] = (
    "tensorrt",
    "onnxruntime-cuda",
    "torch-cuda",
    "onnxruntime-cpu",
    "torch-cpu",
)
#: Accepted backend names and what they resolve to (None: decided by what is available).
ALIASES: dict[str, str | None] = {
    "auto": None,
    "trt": "tensorrt",
    "tensorrt": "tensorrt",
    "onnxruntime": None,
    "ort": None,
    "onnxruntime-cpu": "onnxruntime-cpu",
    "onnxruntime-cuda": "onnxruntime-cuda",
    "torch": None,
    "torch-cpu": "torch-cpu",
    "torch-cuda": "torch-cuda",
}
BACKEND_CHOICES: tuple[str, ...] = ("auto", "trt", "onnxruntime", "torch", *AUTO_ORDER)
SMOOTHING_CHOICES: tuple[str, ...] = ("none", "ema", "mean")
