"""engines: export of trained students to ONNX and TensorRT, runtime backends (TensorRT, ONNX
Runtime, PyTorch) and the streaming classifier for live skeleton windows.

* :mod:`engines.export` - ``Ensemble`` (K students -> combined probabilities), ``export_onnx``,
  ``check_parity``/``export_checked`` (ONNX Runtime vs PyTorch, fails above 1e-4 for FP32).
* :mod:`engines.onnx_fp16` - FP32 -> FP16 ONNX graphs (what TensorRT 11 needs for FP16).
* :mod:`engines.tensorrt` - TensorRT 10/11 feature detection, engine build, cache, runtime.
* :mod:`engines.backends` - ``ModelSource``, ``open_backend("auto" | "tensorrt" | ...)``.
* :mod:`engines.streaming` - ``StreamingClassifier``: capture frames in, ``Prediction`` out.
"""
