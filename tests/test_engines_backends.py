"""Runtime backends: the shared interface, ONNX Runtime vs PyTorch agreement, auto selection and
clear errors for engines that cannot run here."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from engines import backends
from engines.backends import (
    LatencyStats,
    ModelSource,
    OnnxRuntimeBackend,
    TorchBackend,
    availability,
    faster_backend,
    open_backend,
    resolve_backend,
)
from xmkd.checkpoint import make_checkpoint, save_checkpoint
from xmkd.errors import XmkdError
from xmkd.models import build_student
from xmkd.preprocess import default_input_spec

torch.set_num_threads(1)
CLASSES = [f"action {i}" for i in range(6)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    students = []
    for _ in range(2):
        model = build_student("stgcn", len(CLASSES), width=0.125)
        for m in model.modules():  # sharper than the reference init (see test_engines_export)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        students.append(("stgcn", {"width": 0.125}, model))
    spec = default_input_spec("stgcn", window=32, fit="resize", center="frame")
    path = tmp_path_factory.mktemp("ckpt") / "students.pt"
    save_checkpoint(path, make_checkpoint("students", students, CLASSES, spec.to_dict()))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One export cache for the module: the checkpoint is exported once and reused."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XMKD_CACHE", str(folder))
        yield folder


def windows(n: int = 3, t: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, t, 25, 2)) * 0.5).astype(np.float32)


def test_latency_stats():
    stats = LatencyStats.of([0.001] * 98 + [0.010, 0.020])
    assert stats.count == 100 and stats.p50_ms == pytest.approx(1.0)
    assert 9.0 < stats.p99_ms <= 20.0 and stats.mean_ms == pytest.approx(1.28)
    assert np.isnan(LatencyStats.of([]).p50_ms)


def test_torch_and_onnxruntime_agree(checkpoint, cache):
    source = ModelSource.from_checkpoint(checkpoint)
    source.exporter = "torchscript"  # 20x faster to export than dynamo; same graph semantics
    assert source.class_names == CLASSES and source.window == 32 and source.rule == "mean"
    torch_cpu = TorchBackend("cpu").load(source)
    ort_cpu = OnnxRuntimeBackend("cpu").load(source)
    assert source.onnx_path is not None and source.onnx_path.is_relative_to(cache)
    x = windows()
    a, b = torch_cpu.classify(x), ort_cpu.classify(torch.from_numpy(x))
    assert a.shape == (3, len(CLASSES)) and np.allclose(a.sum(1), 1.0, atol=1e-5)
    assert np.abs(a - b).max() < 1e-5
    assert a.std() > 0.01  # not a uniform output that would hide a mismatch
    # dynamic window: ST-GCN runs at another window too, in both backends
    y = windows(1, 50, seed=1)
    assert np.abs(torch_cpu.classify(y) - ort_cpu.classify(y)).max() < 1e-5
    ort_cpu.warm_up(iterations=2)
    assert ort_cpu.latency().count == 0
    for _ in range(4):
        ort_cpu.classify(x[:1])
    assert ort_cpu.latency().count == 4 and ort_cpu.latency().p50_ms > 0
    # The exported file is reused (cached by checkpoint hash, window and rule).
    again = ModelSource.from_checkpoint(checkpoint)
    again.exporter = "torchscript"
    assert again.onnx_file() == source.onnx_path


def test_onnx_source_carries_names_and_refuses_torch(checkpoint, cache):
    source = ModelSource.from_checkpoint(checkpoint)
    source.exporter = "torchscript"
    from_file = ModelSource.from_onnx(source.onnx_file())
    assert from_file.class_names == CLASSES and from_file.rule == "mean"
    assert from_file.spec == source.spec
    backend = open_backend("auto", from_file)
    assert backend.name == "onnxruntime-cpu"
    x = windows(2)
    expected = TorchBackend().load(source).classify(x)
    assert np.abs(backend.classify(x) - expected).max() < 1e-5
    with pytest.raises(XmkdError, match="PyTorch needs the checkpoint"):
        open_backend("torch", from_file)


@pytest.mark.skipif(torch.cuda.is_available(), reason="races the CPU backends")
def test_auto_keeps_the_faster_of_onnxruntime_and_torch(checkpoint, cache, monkeypatch):
    """``auto`` times ONNX Runtime and PyTorch on the model's window and keeps the faster; a
    named family is taken as asked, without a race."""
    import time

    source = ModelSource.from_checkpoint(checkpoint)
    source.exporter = "torchscript"

    def slowed(patch: pytest.MonkeyPatch, cls) -> None:
        run = cls._run
        patch.setattr(cls, "_run", lambda self, w: (time.sleep(0.03), run(self, w))[1])

    with monkeypatch.context() as patch:
        slowed(patch, TorchBackend)
        chosen = open_backend("auto", source)
        assert chosen.name == "onnxruntime-cpu"
        assert "vs torch-cpu" in chosen.selection and chosen.latency().count == 0
        assert open_backend("torch", source).selection == ""
    with monkeypatch.context() as patch:
        slowed(patch, OnnxRuntimeBackend)
        chosen = open_backend("auto", source)
        assert chosen.name == "torch-cpu" and "vs onnxruntime-cpu" in chosen.selection
        # a slow model ends the race after two rounds once its time budget is spent
        slow_race = faster_backend(OnnxRuntimeBackend().load(source), chosen, budget_s=0.01)
        assert slow_race.name == "torch-cpu" and "(median of 2)" in slow_race.selection
        assert np.abs(chosen.classify(windows(1))).sum() > 0


def test_classify_checks_its_input(checkpoint):
    backend = open_backend("torch", ModelSource.from_checkpoint(checkpoint))
    with pytest.raises(XmkdError, match=r"\(N, 3, T, 25, M\)"):
        backend.classify(np.zeros((3, 32, 25, 2), np.float32))
    with pytest.raises(XmkdError, match="no model loaded"):
        TorchBackend().classify(windows(1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only choices")
def test_auto_selection_and_unavailable_engines_on_cpu(monkeypatch):
    assert resolve_backend("torch") == "torch-cpu"
    assert resolve_backend("onnxruntime") == "onnxruntime-cpu"
    assert resolve_backend("auto") == "onnxruntime-cpu"
    reasons = availability()
    assert reasons["torch-cuda"] and reasons["onnxruntime-cuda"] and reasons["tensorrt"]
    with pytest.raises(XmkdError, match="tensorrt engine is not available"):
        resolve_backend("trt")
    with pytest.raises(XmkdError, match="torch-cuda engine is not available: no CUDA GPU"):
        resolve_backend("torch-cuda")
    with pytest.raises(XmkdError, match="unknown engine"):
        resolve_backend("tensorflow")
    # Without onnxruntime, auto falls to PyTorch on CPU (documented order).
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    assert resolve_backend("auto") == "torch-cpu"
    with pytest.raises(XmkdError, match="no onnxruntime engine can run here"):
        resolve_backend("onnxruntime")


def test_auto_order_prefers_gpu_engines(monkeypatch):
    monkeypatch.setattr(
        backends,
        "availability",
        lambda: {name: None for name in backends.AUTO_ORDER},
    )
    assert resolve_backend("auto") == "tensorrt"
    assert resolve_backend("torch") == "torch-cuda"
    assert resolve_backend("onnxruntime") == "onnxruntime-cuda"
    monkeypatch.setattr(
        backends,
        "availability",
        lambda: {
            "tensorrt": "no",
            "onnxruntime-cuda": "no",
            "torch-cuda": None,
            "onnxruntime-cpu": None,
            "torch-cpu": None,
        },
    )
    assert resolve_backend("auto") == "torch-cuda"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backends_match_cpu(checkpoint, cache):
    source = ModelSource.from_checkpoint(checkpoint)
    source.exporter = "torchscript"
    x = windows()
    expected = TorchBackend("cpu").load(source).classify(x)
    assert np.abs(TorchBackend("cuda").load(source).classify(x) - expected).max() < 1e-4
    if availability()["onnxruntime-cuda"] is None:
        ort_cuda = OnnxRuntimeBackend("cuda").load(source)
        assert np.abs(ort_cuda.classify(x) - expected).max() < 1e-4
    if availability()["tensorrt"] is None:
        trt = open_backend("tensorrt", source)
        assert np.abs(trt.classify(x) - expected).max() < 1e-3


def test_model_source_from_file(checkpoint, cache, tmp_path):
    source = ModelSource.from_checkpoint(checkpoint)
    source.exporter = "torchscript"
    onnx_path = source.onnx_file()
    assert ModelSource.from_file(checkpoint).students
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not checked until TensorRT loads it")
    with pytest.raises(XmkdError, match="model.onnx written beside it"):
        ModelSource.from_file(plan)
    (tmp_path / "model.onnx").write_bytes(onnx_path.read_bytes())
    from_plan = ModelSource.from_file(plan)
    assert from_plan.plan_path == plan and from_plan.class_names == CLASSES
    # Without TensorRT the ONNX beside the engine still runs on ONNX Runtime.
    if availability()["tensorrt"] is not None:
        assert open_backend("auto", from_plan).name.startswith("onnxruntime")
    with pytest.raises(XmkdError, match="no such model file"):
        ModelSource.from_file(tmp_path / "missing.pt")
