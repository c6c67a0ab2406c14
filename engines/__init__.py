"""engines: export of trained students to ONNX and TensorRT, runtime backends (TensorRT, ONNX
Runtime, PyTorch) and the streaming classifier for live skeleton windows."""
