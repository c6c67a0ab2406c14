"""TensorRT support: version/feature detection, build decisions for TensorRT 10 and 11, shape
profiles, cache keys and the build/cache flow against a fake ``tensorrt`` module (CPU); the real
engine on a GPU (marked ``trt``)."""

from __future__ import annotations

import enum
import importlib.util
import shutil
import types

import numpy as np
import pytest
import torch

from engines import tensorrt as trt_mod
from engines.tensorrt import (
    EngineCache,
    EngineKey,
    GpuInfo,
    ShapeProfile,
    build_or_load_engine,
    build_serialized_engine,
    detect_features,
    parse_version,
    plan_build,
    profile_for_onnx,
)
from xmkd.errors import MissingExtraError, XmkdError

# ---------------------------------------------------------------------------- a fake tensorrt


def fake_tensorrt(version: str, fp16_flag: bool, strongly_typed: bool, **behaviour):
    """A stand-in for the ``tensorrt`` module with the attributes xmkd uses; it records calls.

    ``behaviour``: parse_ok (bool), parse_errors (list[str]), build_result (bytes | None).
    """
    calls: list[tuple] = []
    builder_flags = {"TF32": 0, "REFIT": 1}
    if fp16_flag:
        builder_flags["FP16"] = 2
    creation_flags = {"EXPLICIT_BATCH": 0}
    if strongly_typed:
        creation_flags["STRONGLY_TYPED"] = 1

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            calls.append(("Logger", severity))

    class Input:
        def __init__(self, name):
            self.name = name

    class Network:
        num_inputs = 1

        def get_input(self, i):
            return Input("skeleton")

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = len(behaviour.get("parse_errors", []))

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            return behaviour.get("parse_ok", True)

        def get_error(self, i):
            return behaviour["parse_errors"][i]

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("set_shape", name, lo, opt, hi))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag):
            calls.append(("set_flag", flag))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network",))
            return behaviour.get("build_result", b"PLAN-" + version.encode())

    module = types.SimpleNamespace(
        __version__=version,
        Logger=Logger,
        Builder=Builder,
        OnnxParser=Parser,
        BuilderFlag=enum.IntEnum("BuilderFlag", builder_flags),
        NetworkDefinitionCreationFlag=enum.IntEnum("NetworkDefinitionCreationFlag", creation_flags),
        MemoryPoolType=enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0}),
    )
    module.calls = calls
    return module


TRT10 = dict(version="10.13.0.35", fp16_flag=True, strongly_typed=True)
TRT11 = dict(version="11.1.0.2", fp16_flag=False, strongly_typed=True)
GPU = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))


@pytest.fixture(scope="module")
def exported_stgcn(tmp_path_factory):
    from engines.export import export_onnx
    from xmkd.models import build_student

    torch.manual_seed(0)
    model = build_student("stgcn", 5, width=0.125).eval()
    folder = tmp_path_factory.mktemp("onnx")
    return export_onnx(model, folder / "st.onnx", 32, exporter="torchscript").path


@pytest.fixture
def stgcn_onnx(exported_stgcn, tmp_path):
    """A private copy (tests change the file to force rebuilds)."""
    copy = tmp_path / "st.onnx"
    shutil.copyfile(exported_stgcn, copy)
    return copy


# ---------------------------------------------------------------------------- detection


def test_parse_version():
    assert parse_version("10.13.0.35") == (10, 13, 0, 35)
    assert parse_version("11.0.0rc1") == (11, 0, 0)
    assert parse_version("10.4.0+cuda12") == (10, 4, 0)
    with pytest.raises(XmkdError):
        parse_version("unknown")


def test_feature_detection_and_build_plans():
    f10 = detect_features(fake_tensorrt(**TRT10))
    f11 = detect_features(fake_tensorrt(**TRT11))
    assert f10.major == 10 and f10.fp16_builder_flag and f10.strongly_typed_flag
    assert f11.major == 11 and not f11.fp16_builder_flag
    assert f10.fp16_strategy() == "builder-flag" and f11.fp16_strategy() == "fp16-onnx"
    # FP16 on 10: FP32 graph + builder flag, weakly typed network (the flag needs weak typing).
    assert plan_build(f10, "fp16") == trt_mod.BuildPlan("fp16", "fp32", (), ("FP16",))
    # FP16 on 11: an FP16 graph in a strongly typed network, no precision flag.
    assert plan_build(f11, "fp16") == trt_mod.BuildPlan("fp16", "fp16", ("STRONGLY_TYPED",), ())
    assert plan_build(f10, "fp32").network_flags == ("STRONGLY_TYPED",)
    assert plan_build(f11, "fp32").builder_flags == ()
    old = detect_features(fake_tensorrt("8.6.1", fp16_flag=True, strongly_typed=False))
    assert plan_build(old, "fp32").network_flags == ()
    with pytest.raises(XmkdError):
        plan_build(f10, "int8")


# ---------------------------------------------------------------------------- profiles and keys


def test_shape_profiles(stgcn_onnx):
    profile = ShapeProfile(batch=(1, 2, 8), window=(16, 64, 300))
    lo, opt, hi = profile.shapes()
    assert lo == (1, 3, 16, 25, 2) and opt == (2, 3, 64, 25, 2) and hi == (8, 3, 300, 25, 2)
    assert profile.contains((4, 3, 100, 25, 2)) and not profile.contains((9, 3, 100, 25, 2))
    with pytest.raises(XmkdError, match="min <= opt <= max"):
        ShapeProfile(batch=(2, 1, 8))
    fixed = ShapeProfile.for_onnx_input(["batch", 3, 32, 25, 2], 32, max_batch=4)
    assert fixed.batch == (1, 1, 4) and fixed.window == (32, 32, 32)
    dynamic = ShapeProfile.for_onnx_input(["batch", 3, "window", 25, 2], 48)
    assert dynamic.window == (16, 48, 300)
    assert ShapeProfile.for_onnx_input([None, 3, None, 25, 2], 400).window == (16, 400, 400)
    read = profile_for_onnx(stgcn_onnx, 32, max_batch=2)
    assert read.batch == (1, 1, 2) and read.window == (16, 32, 300)


def test_engine_key_changes_with_every_input():
    base = EngineKey(
        "ab" * 32, GPU.name, GPU.compute_capability, "10.13.0.35", "fp32", ShapeProfile()
    )
    variants = [
        EngineKey("cd" * 32, *list(vars(base).values())[1:]),
        EngineKey(base.onnx_sha256, "NVIDIA L4", (8, 9), "10.13.0.35", "fp32", ShapeProfile()),
        EngineKey(base.onnx_sha256, GPU.name, (8, 0), "10.13.0.35", "fp32", ShapeProfile()),
        EngineKey(base.onnx_sha256, GPU.name, (9, 0), "11.0.0", "fp32", ShapeProfile()),
        EngineKey(base.onnx_sha256, GPU.name, (9, 0), "10.13.0.35", "fp16", ShapeProfile()),
        EngineKey(
            base.onnx_sha256, GPU.name, (9, 0), "10.13.0.35", "fp32", ShapeProfile(batch=(1, 1, 16))
        ),
    ]
    digests = {base.digest()} | {v.digest() for v in variants}
    assert len(digests) == 1 + len(variants)
    assert base.digest() == EngineKey(**vars(base)).digest()  # deterministic


def test_engine_cache_roundtrip(tmp_path):
    cache = EngineCache(tmp_path)
    key = EngineKey("ab" * 32, GPU.name, (9, 0), "10.13.0.35", "fp32", ShapeProfile())
    assert cache.load(key) is None
    path = cache.store(key, b"engine-bytes")
    assert cache.load(key) == b"engine-bytes" and path.with_suffix(".json").is_file()
    # A description that does not match the full key (prefix collision, edited file) is a miss.
    path.with_suffix(".json").write_text('{"key": "something else"}')
    assert cache.load(key) is None


# ---------------------------------------------------------------------------- build flow (fake)


def test_build_on_tensorrt10_fp16_uses_the_builder_flag(stgcn_onnx):
    trt = fake_tensorrt(**TRT10)
    profile = ShapeProfile(batch=(1, 1, 4), window=(16, 32, 300))
    plan = build_serialized_engine(stgcn_onnx, profile, "fp16", workspace_bytes=1 << 28, trt=trt)
    assert plan == b"PLAN-10.13.0.35"
    calls = trt.calls
    assert ("create_network", 0) in calls  # weakly typed: FP16 flag requires it
    assert ("set_flag", trt.BuilderFlag.FP16) in calls
    assert ("set_memory_pool_limit", trt.MemoryPoolType.WORKSPACE, 1 << 28) in calls
    assert ("set_shape", "skeleton", *profile.shapes()) in calls
    assert ("parse_from_file", str(stgcn_onnx)) in calls


def test_build_on_tensorrt11_fp16_parses_an_fp16_graph(stgcn_onnx, tmp_path):
    import onnx

    trt = fake_tensorrt(**TRT11)
    plan, path, built = build_or_load_engine(
        stgcn_onnx,
        ShapeProfile(window=(16, 32, 300)),
        "fp16",
        EngineCache(tmp_path / "c"),
        gpu=GPU,
        trt=trt,
    )
    assert built and plan == b"PLAN-11.1.0.2" and path.read_bytes() == plan
    parsed = [c[1] for c in trt.calls if c[0] == "parse_from_file"]
    assert parsed and parsed[0].endswith(".fp16.onnx")
    graph = onnx.load(parsed[0]).graph
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    assert ("create_network", 1 << 1) in trt.calls  # STRONGLY_TYPED bit
    assert not [c for c in trt.calls if c[0] == "set_flag"]


def test_engine_cache_reuses_and_rebuilds(stgcn_onnx, tmp_path):
    cache = EngineCache(tmp_path / "cache")
    profile = ShapeProfile(window=(16, 32, 300))
    trt = fake_tensorrt(**TRT10)
    _, first, built = build_or_load_engine(stgcn_onnx, profile, "fp32", cache, gpu=GPU, trt=trt)
    assert built
    _, again, built = build_or_load_engine(stgcn_onnx, profile, "fp32", cache, gpu=GPU, trt=trt)
    assert not built and again == first
    assert sum(c[0] == "build_serialized_network" for c in trt.calls) == 1
    other_gpu = GpuInfo("NVIDIA L4", (8, 9))
    assert build_or_load_engine(stgcn_onnx, profile, "fp32", cache, gpu=other_gpu, trt=trt)[2]
    newer = fake_tensorrt(**{**TRT10, "version": "10.14.1"})
    assert build_or_load_engine(stgcn_onnx, profile, "fp32", cache, gpu=GPU, trt=newer)[2]
    with open(stgcn_onnx, "ab") as f:  # a changed model file (new export)
        f.write(b"\0")
    assert build_or_load_engine(stgcn_onnx, profile, "fp32", cache, gpu=GPU, trt=trt)[2]


def test_parser_and_builder_failures_are_reported(stgcn_onnx):
    trt = fake_tensorrt(**TRT10, parse_ok=False, parse_errors=["node Einsum_3: unsupported"])
    with pytest.raises(XmkdError, match="cannot parse .*Einsum_3: unsupported"):
        build_serialized_engine(stgcn_onnx, ShapeProfile(), trt=trt)
    trt = fake_tensorrt(**TRT10, build_result=None)
    with pytest.raises(XmkdError, match="failed to build an engine"):
        build_serialized_engine(stgcn_onnx, ShapeProfile(), trt=trt)


def test_two_builds_of_one_engine_never_share_a_temporary_file(tmp_path, monkeypatch):
    """Two processes storing the same engine at once (simulated: the second store runs while the
    first is about to rename its temporary file) both finish, and the cache holds a whole plan."""
    cache = EngineCache(tmp_path / "cache")
    key = EngineKey("cd" * 32, GPU.name, (9, 0), "10.13.0.35", "fp32", ShapeProfile())
    real_replace = trt_mod.os.replace
    interleaved = []

    def replace(src, dst):
        if not interleaved:
            interleaved.append(src)
            cache.store(key, b"plan-of-the-other-build")  # same key, same moment
        real_replace(src, dst)

    monkeypatch.setattr(trt_mod.os, "replace", replace)
    path = cache.store(key, b"plan-of-this-build")  # raised FileNotFoundError before the fix
    assert path.read_bytes() in (b"plan-of-this-build", b"plan-of-the-other-build")
    assert cache.load(key) == path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.stem + ".json"])


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path / "cache")
    key = EngineKey("ef" * 32, GPU.name, (9, 0), "10.13.0.35", "fp32", ShapeProfile())

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trt_mod.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.store(key, b"plan")
    assert list((tmp_path / "cache").iterdir()) == []


def test_fp16_conversions_of_concurrent_builds_use_their_own_files(stgcn_onnx, monkeypatch):
    from engines import onnx_fp16

    written = []

    def convert(source, target):
        written.append(str(target))
        shutil.copyfile(source, target)

    monkeypatch.setattr(onnx_fp16, "convert_file_to_float16", convert)
    monkeypatch.setattr(onnx_fp16, "is_float16_model", lambda path: False)
    plan = plan_build(detect_features(fake_tensorrt(**TRT11)), "fp16")
    target = trt_mod.prepare_onnx_for(stgcn_onnx, plan)
    assert target.name.endswith(".fp16.onnx") and target.is_file()
    assert written and written[0] != str(target)  # written under a unique name, then renamed
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


class _FakeStream:
    def __init__(self, name, log):
        self.name, self.log, self.cuda_stream = name, log, id(self)

    def wait_stream(self, other):
        self.log.append(("wait", self.name, other.name))

    def wait_event(self, event):
        self.log.append(("wait_event", self.name))

    def synchronize(self):
        self.log.append(("synchronize", self.name))


def _fake_runtime(log):
    """The tensorrt runtime classes TrtRunner uses: one float32 input and output."""

    class TensorIOMode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    class Context:
        def set_input_shape(self, name, shape):
            self.shape = shape
            return True

        def get_tensor_shape(self, name):
            return (self.shape[0], 3)

        def set_tensor_address(self, name, address):
            pass

        def execute_async_v3(self, stream):
            log.append(("execute", stream))
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ("skeleton", "logits")[i]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == "skeleton" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return "f32"

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            return Engine()

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    return types.SimpleNamespace(
        Logger=Logger, Runtime=Runtime, TensorIOMode=TensorIOMode, float32="f32", float16="f16"
    )


def test_runner_waits_for_the_stream_that_produced_its_input(monkeypatch):
    """Inputs computed on the caller's stream are read by TensorRT only after that stream's work:
    the runner's own stream waits for it before execute_async_v3 (CUDA itself is faked)."""
    import contextlib

    log = []
    caller = _FakeStream("caller", log)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: _FakeStream("runner", log))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, device=None, **k: real_empty(*a, **k))
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: self)  # stays on the CPU
    runner = trt_mod.TrtRunner(b"plan", trt=_fake_runtime(log))
    out = runner(torch.zeros(2, 3, 32, 25, 2))
    assert out.shape == (2, 3)
    runner_stream = runner.stream.cuda_stream
    assert log == [
        ("wait", "runner", "caller"),
        ("execute", runner_stream),
        ("synchronize", "runner"),
    ]


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here"
)
def test_missing_tensorrt_is_one_sentence():
    with pytest.raises(MissingExtraError, match="pypi.nvidia.com") as info:
        trt_mod.load_tensorrt()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- real GPU


def _have_trt_gpu() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.mark.trt
@pytest.mark.skipif(not _have_trt_gpu(), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_real_engine_matches_pytorch(stgcn_onnx, tmp_path, precision, tol):
    from engines.tensorrt import TrtRunner
    from xmkd.models import build_student

    torch.manual_seed(0)
    model = build_student("stgcn", 5, width=0.125).eval()  # the weights of stgcn_onnx
    profile = ShapeProfile(batch=(1, 1, 4), window=(16, 32, 128))
    plan, _, _ = build_or_load_engine(stgcn_onnx, profile, precision, EngineCache(tmp_path))
    runner = TrtRunner(plan)
    for shape in [(1, 3, 32, 25, 2), (3, 3, 100, 25, 2)]:
        x = torch.randn(shape) * 0.5
        out = runner(x.cuda()).float().cpu().numpy()
        with torch.no_grad():
            ref = model(x).softmax(-1).numpy()
        assert np.abs(out - ref).max() < tol
