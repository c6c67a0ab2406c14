"""TensorRT engines for exported students: build from ONNX, cache, and run on torch CUDA tensors.

Supports TensorRT 10 and 11 by detecting what the installed module offers instead of guessing
from the version alone:

* TensorRT 10 still has the weak-typing builder flags: FP16 is ``BuilderFlag.FP16`` on an FP32
  network (then the network must not be created strongly typed).
* TensorRT 11 removed them (every network is strongly typed; ``STRONGLY_TYPED`` is accepted and
  ignored): FP16 means the ONNX graph itself is FP16. We convert the exported FP32 graph with
  :func:`engines.onnx_fp16.convert_to_float16` (float16 weights and compute, float32 I/O).

Engines are cached on disk keyed by the ONNX file's sha256, the GPU (name and compute
capability), the TensorRT version, the precision and the shape profile, so changing any of them
builds a new engine. Inference binds torch CUDA tensors with ``set_tensor_address`` and runs
``execute_async_v3`` on a dedicated (non-default) torch CUDA stream; no pycuda.

``tensorrt`` is imported lazily: without it (or without a CUDA GPU) the user gets one sentence.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from xmkd.errors import XmkdError, require

Precision = Literal["fp32", "fp16"]

TRT_HINT = (
    "TensorRT's libraries come from NVIDIA's package index, not PyPI: "
    'pip install --extra-index-url https://pypi.nvidia.com "xmkd[trt]" '
    "(and TensorRT needs a CUDA GPU with its driver)"
)

#: Default builder workspace (scratch memory TensorRT may use for tactics).
DEFAULT_WORKSPACE_BYTES = 1 << 30


def load_tensorrt() -> ModuleType:
    """Import ``tensorrt`` or raise one sentence saying how to get it."""
    return require("tensorrt", "trt", "The TensorRT engine", hint=TRT_HINT)


def cache_dir() -> Path:
    """Where engines (and exported ONNX files of checkpoints) are cached: $XMKD_CACHE or
    ~/.cache/xmkd."""
    root = os.environ.get("XMKD_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "xmkd"


# --------------------------------------------------------------------------------------------
# Feature detection


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0, 35)``; suffixes such as ``rc1`` or ``+cuda12`` ignored."""
    parts = []
    for piece in str(text).split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    if not parts:
        raise XmkdError(f"cannot read the TensorRT version {text!r}")
    return tuple(parts)


@dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT offers, read from the module itself."""

    version: tuple[int, ...]
    #: ``BuilderFlag.FP16`` exists (weak typing: TensorRT 10 and older).
    fp16_builder_flag: bool
    #: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists (TensorRT >= 9).
    strongly_typed_flag: bool

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def version_string(self) -> str:
        return ".".join(map(str, self.version))

    def fp16_strategy(self) -> Literal["builder-flag", "fp16-onnx"]:
        """How FP16 is obtained: the weak-typing flag where it exists, else an FP16 ONNX graph."""
        return "builder-flag" if self.fp16_builder_flag else "fp16-onnx"


def detect_features(trt: Any) -> TrtFeatures:
    """Inspect a ``tensorrt`` module (or any object with the same attributes)."""
    version = parse_version(getattr(trt, "__version__", ""))
    builder_flag = getattr(trt, "BuilderFlag", None)
    creation_flag = getattr(trt, "NetworkDefinitionCreationFlag", None)
    return TrtFeatures(
        version=version,
        fp16_builder_flag=builder_flag is not None and hasattr(builder_flag, "FP16"),
        strongly_typed_flag=creation_flag is not None and hasattr(creation_flag, "STRONGLY_TYPED"),
    )


@dataclass(frozen=True)
class BuildPlan:
    """The decisions for one build: which ONNX precision to parse, which flags to set."""

    precision: Precision
    onnx_precision: Precision
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]


def plan_build(features: TrtFeatures, precision: Precision) -> BuildPlan:
    """Choose network/builder flags for ``precision`` on the detected TensorRT.

    FP32: a strongly typed network where the flag exists (types come from the graph: FP32).
    FP16 with the weak-typing flag (TensorRT 10): FP32 graph, ``BuilderFlag.FP16``, and the network
    must then be weakly typed. FP16 without it (TensorRT 11): an FP16 graph, strongly typed.
    """
    if precision not in ("fp32", "fp16"):
        raise XmkdError(f"unknown TensorRT precision {precision!r} (use fp32 or fp16)")
    strongly = ("STRONGLY_TYPED",) if features.strongly_typed_flag else ()
    if precision == "fp32":
        return BuildPlan("fp32", "fp32", strongly, ())
    if features.fp16_strategy() == "builder-flag":
        return BuildPlan("fp16", "fp32", (), ("FP16",))
    return BuildPlan("fp16", "fp16", strongly, ())


# --------------------------------------------------------------------------------------------
# Shape profiles


@dataclass(frozen=True)
class ShapeProfile:
    """Min/opt/max of the dynamic input dimensions (batch and window) for one optimization profile.

    A fixed window (HCN) has ``window == (w, w, w)``. The other dimensions of the skeleton input
    (channels 3, joints 25, persons M) are fixed by the model.
    """

    batch: tuple[int, int, int] = (1, 1, 8)
    window: tuple[int, int, int] = (16, 64, 300)
    channels: int = 3
    joints: int = 25
    persons: int = 2

    def __post_init__(self) -> None:
        for name in ("batch", "window"):
            lo, opt, hi = getattr(self, name)
            if not 1 <= lo <= opt <= hi:
                raise XmkdError(
                    f"the TensorRT {name} profile must satisfy 1 <= min <= opt <= max, "
                    f"got {lo}/{opt}/{hi}"
                )

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes of the (N, C, T, V, M) input."""
        return tuple(  # type: ignore[return-value]
            (self.batch[i], self.channels, self.window[i], self.joints, self.persons)
            for i in range(3)
        )

    def contains(self, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.shapes()
        return len(shape) == 5 and all(a <= s <= b for a, s, b in zip(lo, shape, hi))

    @classmethod
    def for_onnx_input(
        cls,
        dims: list[int | str | None],
        window: int,
        max_batch: int = 8,
        window_range: tuple[int, int] = (16, 300),
    ) -> ShapeProfile:
        """A profile for an ONNX input whose dims are ints (fixed) or names/None (dynamic)."""
        if len(dims) != 5:
            raise XmkdError(f"expected a 5-D skeleton input (N, C, T, V, M), got dims {dims}")

        def fixed(d: int | str | None) -> int | None:
            return d if isinstance(d, int) and d > 0 else None

        n, c, t, v, m = (fixed(d) for d in dims)
        batch = (n, n, n) if n else (1, 1, max(1, max_batch))
        if t:
            win = (t, t, t)
        else:
            lo, hi = min(window_range[0], window), max(window_range[1], window)
            win = (lo, window, hi)
        return cls(batch=batch, window=win, channels=c or 3, joints=v or 25, persons=m or 2)


def profile_for_onnx(
    onnx_path: str | Path,
    window: int,
    max_batch: int = 8,
    window_range: tuple[int, int] = (16, 300),
) -> ShapeProfile:
    """The profile for an exported file's input: its fixed dims as they are, dynamic batch
    1/1/max_batch, dynamic window min/``window``/max over ``window_range``."""
    onnx = require("onnx", "onnx", "Reading ONNX models")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    dims: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in proto.graph.input[0].type.tensor_type.shape.dim
    ]
    return ShapeProfile.for_onnx_input(dims, window, max_batch, window_range)


# --------------------------------------------------------------------------------------------
# Cache keys


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @classmethod
    def current(cls, device: int = 0) -> GpuInfo:
        import torch

        if not torch.cuda.is_available():
            raise XmkdError(f"TensorRT needs a CUDA GPU and none is visible to torch; {TRT_HINT}")
        capability = tuple(torch.cuda.get_device_capability(device))
        return cls(torch.cuda.get_device_name(device), capability)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a change in any field means a different engine."""

    onnx_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: Precision
    profile: ShapeProfile

    def digest(self) -> str:
        payload = asdict(self)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.digest()}


@dataclass
class EngineCache:
    """Serialized engines in ``directory`` as ``<key>.plan`` plus a ``<key>.json`` description."""

    directory: Path = field(default_factory=lambda: cache_dir() / "tensorrt")

    def plan_path(self, key: EngineKey) -> Path:
        return Path(self.directory) / f"{key.digest()[:32]}.plan"

    def load(self, key: EngineKey) -> bytes | None:
        path = self.plan_path(key)
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()):
            return None
        try:
            recorded = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        # The file name is a key prefix; the full key in the JSON guards against collisions.
        if recorded.get("key") != key.digest():
            return None
        return path.read_bytes()

    def store(self, key: EngineKey, plan: bytes) -> Path:
        path = self.plan_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash never leaves a truncated plan under a valid name; each
        # write has its own temporary file, so two builds of the same engine (two processes)
        # cannot write into one file, and the last complete one wins.
        _replace_atomically(path, plan)
        _replace_atomically(path.with_suffix(".json"), json.dumps(key.to_json(), indent=1).encode())
        return path


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a uniquely named temporary file beside ``path``, then rename it over
    ``path`` (atomic on one filesystem); the temporary file never outlives a failed write."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# Build


def _flag_bits(enum: Any, names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << int(getattr(enum, name))
    return bits


def build_serialized_engine(
    onnx_path: str | Path,
    profile: ShapeProfile,
    precision: Precision = "fp32",
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    trt: Any = None,
    input_shapes: dict[str, tuple[tuple[int, ...], ...]] | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine for ``profile`` at ``precision``.

    For FP16 on a TensorRT without the FP16 builder flag, ``onnx_path`` must already be the FP16
    graph (see :func:`prepare_onnx_for`). Parser errors are reported with their node and reason.
    """
    trt = trt or load_tensorrt()
    features = detect_features(trt)
    plan = plan_build(features, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(
        _flag_bits(trt.NetworkDefinitionCreationFlag, plan.network_flags)
    )
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so weights stored as ONNX external data are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise XmkdError(f"TensorRT {features.version_string} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    opt_profile = builder.create_optimization_profile()
    lo, opt, hi = profile.shapes()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        opt_profile.set_shape(tensor.name, *(input_shapes or {}).get(tensor.name, (lo, opt, hi)))
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise XmkdError(
            f"TensorRT {features.version_string} failed to build an engine from {onnx_path} "
            f"({precision}, batch {profile.batch}, window {profile.window}); see its log above"
        )
    return bytes(serialized)


def prepare_onnx_for(onnx_path: str | Path, plan: BuildPlan) -> Path:
    """The ONNX file to parse for ``plan``: the file itself, or its FP16 conversion beside it."""
    onnx_path = Path(onnx_path)
    if plan.onnx_precision == "fp32":
        return onnx_path
    from engines.onnx_fp16 import convert_file_to_float16, is_float16_model

    if is_float16_model(onnx_path):
        return onnx_path
    target = onnx_path.with_name(onnx_path.stem + ".fp16.onnx")
    if not target.exists() or target.stat().st_mtime < onnx_path.stat().st_mtime:
        # converted under a unique name, then renamed: concurrent builds never share a file
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".onnx")
        os.close(fd)
        try:
            convert_file_to_float16(onnx_path, tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return target


def build_or_load_engine(
    onnx_path: str | Path,
    profile: ShapeProfile,
    precision: Precision = "fp32",
    cache: EngineCache | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    gpu: GpuInfo | None = None,
    trt: Any = None,
    input_shapes: dict[str, tuple[tuple[int, ...], ...]] | None = None,
) -> tuple[bytes, Path, bool]:
    """Return ``(plan bytes, plan path, built_now)``; builds only when no cached engine matches.
    ``input_shapes`` (see :func:`build_serialized_engine`) must follow from the ONNX file (whose
    digest is in the cache key), as the static shapes of a continual step do."""
    trt = trt or load_tensorrt()
    features = detect_features(trt)
    build = plan_build(features, precision)
    source = prepare_onnx_for(onnx_path, build)
    gpu = gpu or GpuInfo.current()
    key = EngineKey(
        onnx_sha256=file_sha256(source),
        gpu_name=gpu.name,
        compute_capability=tuple(gpu.compute_capability),
        tensorrt_version=features.version_string,
        precision=precision,
        profile=profile,
    )
    cache = cache or EngineCache()
    cached = cache.load(key)
    if cached is not None:
        return cached, cache.plan_path(key), False
    plan = build_serialized_engine(
        source, profile, precision, workspace_bytes, trt=trt, input_shapes=input_shapes
    )
    return plan, cache.store(key, plan), True


# --------------------------------------------------------------------------------------------
# Runtime


class TrtRunner:
    """A deserialized engine with one execution context, run on its own CUDA stream.

    ``__call__`` takes a (N, C, T, V, M) tensor (moved to the GPU if needed) and returns the
    output tensor on the GPU. The context is not thread-safe, hence the lock.
    """

    def __init__(self, plan: bytes, device: int = 0, trt: Any = None):
        import torch

        self.trt = trt = trt or load_tensorrt()
        if not torch.cuda.is_available():
            raise XmkdError(f"TensorRT needs a CUDA GPU and none is visible to torch; {TRT_HINT}")
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise XmkdError(
                "TensorRT could not deserialize the engine (built by another TensorRT version or "
                "for another GPU?); delete the cached .plan to rebuild it"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = [self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
        self.inputs = [n for n, inp in zip(names, is_input) if inp]
        self.outputs = [n for n, inp in zip(names, is_input) if not inp]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise XmkdError(
                f"expected an engine with one input and one output, got inputs {self.inputs} "
                f"and outputs {self.outputs}"
            )
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.inputs[0]))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.outputs[0]))
        # A dedicated stream: inference never serialises behind work on torch's default stream.
        self.stream = torch.cuda.Stream(device=self.device)
        self._lock = threading.Lock()

    def __call__(self, x: Any) -> Any:
        """Run the engine on ``x``. A CUDA ``x`` may still be being computed on the caller's
        current stream: the runner's stream waits for that work before reading it."""
        import torch

        producer = torch.cuda.current_stream(self.device)
        with self._lock, torch.cuda.stream(self.stream):
            # Everything queued on the caller's stream so far (the kernels writing x) must
            # finish before TensorRT reads the input on this stream.
            self.stream.wait_stream(producer)
            x = torch.as_tensor(x).to(self.device, self.input_dtype, non_blocking=True)
            x = x.contiguous()
            name_in, name_out = self.inputs[0], self.outputs[0]
            if not self.context.set_input_shape(name_in, tuple(x.shape)):
                raise XmkdError(
                    f"input shape {tuple(x.shape)} is outside the engine's optimization profile"
                )
            out = torch.empty(
                tuple(self.context.get_tensor_shape(name_out)),
                dtype=self.output_dtype,
                device=self.device,
            )
            self.context.set_tensor_address(name_in, x.data_ptr())
            self.context.set_tensor_address(name_out, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise XmkdError("TensorRT failed to enqueue the inference (execute_async_v3)")
            # Both tensors stay referenced until the stream is done with them.
            self.stream.synchronize()
        return out


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16}
    if dtype not in table:
        raise XmkdError(f"unsupported TensorRT I/O type {dtype} (expected float32 or float16)")
    return table[dtype]
