"""Runtime backends: one small interface to classify preprocessed skeleton windows with TensorRT,
ONNX Runtime (CPU or CUDA execution provider) or PyTorch (CPU or CUDA).

    source = ModelSource.from_checkpoint("students.pt")
    backend = open_backend("auto", source)       # or "tensorrt", "onnxruntime-cpu", "torch", ...
    backend.warm_up()
    probs = backend.classify(windows)            # (N, 3, T, 25, M) -> (N, classes) numpy
    print(backend.latency())                     # p50/p99 of classify calls

``auto`` picks the fastest available backend. TensorRT, when installed with a GPU, is taken
without a race (it fuses and tunes kernels for the card; building an engine takes minutes, so
racing it would cost more than it could tell). Otherwise the best device's ONNX Runtime and
PyTorch backends are both loaded and timed on the model's own window shape, interleaved, and
the faster one is kept (``Backend.selection`` says what was measured). Which one wins depends on
the model and the machine: on 16 CPU cores PyTorch ran the reference ST-GCN at 300 frames in
0.6-0.8x ONNX Runtime's time, while ONNX Runtime ran HCN in 0.7-0.9x PyTorch's, and at width
0.25 on one thread ONNX Runtime was 1.6-3.9x faster (``bench/bench_engines.py``). Without the
race, the fixed order is ``tensorrt > onnxruntime-cuda > torch-cuda > onnxruntime-cpu >
torch-cpu`` (:func:`resolve_backend`).

A named backend that cannot run here raises :class:`XmkdError` with the reason; nothing falls back
silently. Windows come from :func:`xmkd.preprocess.prepare_batch` (the shared preprocessing);
backends only run the network.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import importlib.util
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.choices import ALIASES, AUTO_ORDER, BACKEND_CHOICES
from xmkd.errors import XmkdError

# --------------------------------------------------------------------------------------------
# What a backend loads


@dataclass
class ModelSource:
    """A trained ensemble and what is needed to feed it: students (for PyTorch and for export),
    or an exported ONNX file (for ONNX Runtime and TensorRT), class names, input spec, rule."""

    class_names: list[str]
    spec: Any  # xmkd.preprocess.InputSpec
    rule: str = "mean"
    students: list[nn.Module] = field(default_factory=list)
    checkpoint: Path | None = None
    onnx_path: Path | None = None
    exporter: str = "dynamo"
    #: What an export records about the checkpoint (engines.export.checkpoint_metadata).
    info: dict[str, Any] = field(default_factory=dict)
    #: A TensorRT engine file from ``xmkd export --format tensorrt``: the tensorrt backend runs
    #: it as is; the others run the ``.onnx`` beside it.
    plan_path: Path | None = None
    #: How the training clips were cut (``xmkd.checkpoint.StreamInfo``): the live path's history,
    #: frame rate and body selection; None: ``xmkd.checkpoint.LEGACY_STREAM``.
    stream: Any = None
    #: Told what takes time while the model is made ready (the ONNX export of a checkpoint:
    #: 25-30 s on 2 CPU cores, silent before), one line per call; None: nothing is said.
    progress: Callable[[str], None] | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> ModelSource:
        """A checkpoint, an exported ``.onnx``, or a TensorRT ``.plan``/``.engine`` (whose
        class names and input spec come from the ``.onnx`` written beside it by xmkd export)."""
        path = Path(path)
        if not path.is_file():
            raise XmkdError(f"{path}: no such model file (a students checkpoint, .onnx or .plan)")
        if path.suffix == ".onnx":
            return cls.from_onnx(path)
        if path.suffix in (".plan", ".engine"):
            onnx_path = path.with_suffix(".onnx")
            if not onnx_path.is_file():
                raise XmkdError(
                    f"{path}: a TensorRT engine needs the {onnx_path.name} written beside it by "
                    "xmkd export (class names and input spec live there)"
                )
            source = cls.from_onnx(onnx_path)
            source.plan_path = path
            return source
        return cls.from_checkpoint(path)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, rule: str | None = None, window: int | None = None
    ) -> ModelSource:
        """Students of a checkpoint (``xmkd.checkpoint.load_students``); ``window`` overrides the
        spec's window (only architectures without a fixed window accept another one)."""
        from engines.export import checkpoint_metadata
        from xmkd.checkpoint import load_students

        students, meta = load_students(path)
        spec = meta.spec()
        if window is not None and window != spec.window:
            spec = spec.replace(window=int(window))
        source = cls(
            class_names=list(meta.class_names),
            spec=spec,
            rule=rule or meta.ensemble,
            students=students,
            checkpoint=Path(path),
            info=checkpoint_metadata(meta),
            stream=meta.stream_info(),
        )
        source.ensemble()  # validates the rule and the window now, not at first use
        return source

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelSource:
        """An ONNX file exported by :mod:`engines.export` (its metadata has names and spec)."""
        from engines.export import verified_metadata
        from xmkd.checkpoint import LEGACY_STREAM, StreamInfo
        from xmkd.preprocess import InputSpec

        # readable, xmkd metadata, finite weights, no failed parity check: else one sentence
        info = verified_metadata(path)
        stream = LEGACY_STREAM
        if info.get("stream"):
            try:
                stream = StreamInfo.from_dict(info["stream"], origin=f"the model {Path(path).name}")
            except ValueError as exc:
                raise XmkdError(f"{path}: its stream metadata is not usable: {exc}") from exc
        return cls(
            class_names=list(info["class_names"]),
            spec=InputSpec.from_dict(info["input_spec"]),
            rule=info.get("ensemble", "mean"),
            onnx_path=Path(path),
            stream=stream,
        )

    @property
    def window(self) -> int:
        return int(self.spec.window)

    @property
    def stream_info(self) -> Any:
        """How the training clips were cut (``xmkd.checkpoint.StreamInfo``)."""
        if self.stream is None:
            from xmkd.checkpoint import LEGACY_STREAM

            return LEGACY_STREAM
        return self.stream

    def prepare(self, sequence: Any) -> np.ndarray:
        """The model input (3, window, 25, M) of a clip (``xmkd.ntu.SkeletonSequence``): THE
        offline path, as the datasets and ``xmkd eval`` build it (bodies chosen as in
        training by ``xmkd.ntu.to_model_array``, then ``xmkd.preprocess.prepare_window`` in
        test mode). The Replay tab, the streaming classifier and the live-accuracy checks all
        call this."""
        stream = self.stream_info
        return prepare_clip(sequence, self.spec, stream.selection, stream.max_bodies)

    def ensemble(self) -> nn.Module:
        from engines.export import Ensemble

        if not self.students:
            raise XmkdError(
                f"{self.onnx_path}: an ONNX file runs only on onnxruntime or tensorrt; "
                "PyTorch needs the checkpoint"
            )
        ensemble = Ensemble(self.students, self.rule).eval()
        fixed = ensemble.fixed_window
        if fixed is not None and fixed != self.window:
            raise XmkdError(f"these students need windows of {fixed} frames, not {self.window}")
        return ensemble

    def onnx_file(self, purpose: str = "onnxruntime") -> Path:
        """The ONNX file of this ensemble: the given one, or a checked export of the checkpoint
        cached under ``$XMKD_CACHE/onnx`` (keyed by the checkpoint's bytes, window and rule)."""
        if self.onnx_path is not None:
            return self.onnx_path
        from engines.export import cached_export_ok, export_checked
        from engines.tensorrt import cache_dir, file_sha256

        if self.checkpoint is not None:
            origin, stem = file_sha256(self.checkpoint), self.checkpoint.stem
        else:  # students built in memory (benchmarks, GUI): key on their weights
            origin, stem = _weights_digest(self.students), "students"
        digest = hashlib.sha256(
            f"{origin}|{self.window}|{self.rule}|{self.exporter}".encode()
        ).hexdigest()[:24]
        target = cache_dir() / "onnx" / f"{stem}-{digest}.onnx"
        # reused only when it is this source's export and its parity check passed; a stray,
        # corrupt or unchecked file there is exported again (and replaced)
        if not cached_export_ok(target, digest):
            say = self.progress or (lambda text: None)
            timing = target.parent / "last-export-seconds"
            try:  # the last export on this machine is the best estimate of the next one
                estimate = f"about {float(timing.read_text()):.0f} s"
            except (OSError, ValueError):
                estimate = "10-30 s on a small CPU"
            say(
                f"exporting {self.checkpoint or 'the students'} to ONNX for {purpose} "
                f"({estimate}, once; cached at {target})"
            )
            start = time.perf_counter()
            export_checked(
                self.ensemble(),
                target,
                self.window,
                rule=self.rule,  # type: ignore[arg-type]
                persons=self.spec.num_persons,
                exporter=self.exporter,  # type: ignore[arg-type]
                metadata={
                    **self.info,
                    "class_names": list(self.class_names),
                    "input_spec": self.spec.to_dict(),
                    "cache_key": digest,
                },
                progress=lambda stage: say(f"  {stage} ..."),
            )
            seconds = time.perf_counter() - start
            say(f"exported in {seconds:.1f} s")
            try:
                timing.write_text(f"{seconds:.1f}\n")
            except OSError:  # only an estimate for next time
                pass
        self.onnx_path = target
        return target


def prepare_clip(sequence: Any, spec: Any, selection: str, max_bodies: int) -> np.ndarray:
    """THE clip -> model input path outside training: ``xmkd.ntu.to_model_array`` choosing
    ``max_bodies`` bodies by ``selection`` (as the datasets do: 2 by motion), then
    ``xmkd.preprocess.prepare_window`` (test mode), which keeps the spec's ``num_persons`` first
    slots. (Choosing only ``num_persons`` bodies is not the same: with one person kept, the
    datasets keep the earlier-appearing of the two most moving bodies.)"""
    from xmkd.ntu import to_model_array
    from xmkd.preprocess import prepare_window

    clip, valid = to_model_array(sequence, max_bodies=int(max_bodies), selection=selection)
    return prepare_window(clip, valid, spec, train=False)


def _weights_digest(students: Sequence[nn.Module]) -> str:
    digest = hashlib.sha256()
    for student in students:
        digest.update(type(student).__name__.encode())
        for name, tensor in student.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Latency


@dataclass(frozen=True)
class LatencyStats:
    """Latency of ``classify`` calls in milliseconds (over the last ``count`` calls)."""

    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not len(seconds):
            return cls(0, float("nan"), float("nan"), float("nan"))
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        return cls(
            len(ms), float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        )

    def __str__(self) -> str:
        if not self.count:
            return "no calls"
        return f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms over {self.count} calls"


# --------------------------------------------------------------------------------------------
# Backends


class Backend(abc.ABC):
    """Classifies batches of preprocessed windows; records the latency of each call."""

    name: str = "backend"

    def __init__(self, history: int = 1000):
        self.source: ModelSource | None = None
        self._times: deque[float] = deque(maxlen=history)
        #: how ``auto`` chose this backend, when it raced two ("" otherwise)
        self.selection = ""

    @abc.abstractmethod
    def load(self, source: ModelSource) -> Backend:
        """Prepare the model for inference; returns self."""

    @abc.abstractmethod
    def _run(self, windows: np.ndarray) -> np.ndarray: ...

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names if self.source else []

    def classify(self, windows: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, 3, T, 25, M) float32 windows -> (N, classes) float32 probabilities."""
        if self.source is None:
            raise XmkdError(f"the {self.name} backend has no model loaded (call load first)")
        if isinstance(windows, torch.Tensor):
            windows = windows.detach().cpu().numpy()
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 5 or windows.shape[1] != 3 or windows.shape[3] != 25:
            raise XmkdError(f"expected windows (N, 3, T, 25, M), got shape {windows.shape}")
        start = time.perf_counter()
        probs = self._run(windows)
        self._times.append(time.perf_counter() - start)
        return np.asarray(probs, dtype=np.float32)

    def warm_up(self, iterations: int = 3, batch: int = 1) -> None:
        """Run a few inferences (lazy initialisation, autotuning) and forget their latency."""
        if self.source is None:
            raise XmkdError(f"the {self.name} backend has no model loaded (call load first)")
        spec = self.source.spec
        x = np.zeros((batch, 3, spec.window, 25, spec.num_persons), dtype=np.float32)
        for _ in range(iterations):
            self.classify(x)
        self._times.clear()

    def latency(self) -> LatencyStats:
        return LatencyStats.of(list(self._times))

    def reset_latency(self) -> None:
        self._times.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class TorchBackend(Backend):
    """PyTorch eager on CPU or CUDA."""

    def __init__(self, device: str = "cpu"):
        super().__init__()
        if device == "cuda" and not torch.cuda.is_available():
            raise XmkdError("the torch-cuda backend needs a CUDA GPU; none is visible to torch")
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"
        self.model: nn.Module | None = None

    def load(self, source: ModelSource) -> TorchBackend:
        model = source.ensemble()
        # A copy on other devices: the source's modules stay on the CPU for export and for
        # other backends loaded from the same source.
        self.model = model if self.device.type == "cpu" else copy.deepcopy(model).to(self.device)
        self.source = source
        return self

    def _run(self, windows: np.ndarray) -> np.ndarray:
        assert self.model is not None
        with torch.inference_mode():
            x = torch.from_numpy(windows).to(self.device, non_blocking=True)
            return self.model(x).float().cpu().numpy()


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with the CPU or the CUDA execution provider."""

    def __init__(self, device: str = "cpu", threads: int | None = None):
        """``threads``: intra-op threads; default torch's count, so side-by-side timings use
        the same cores (ONNX Runtime alone would take every core)."""
        super().__init__()
        from xmkd.errors import require

        self.ort = require("onnxruntime", "onnx", "The onnxruntime backend")
        self.device = device
        self.name = f"onnxruntime-{device}"
        self.threads = threads or torch.get_num_threads()
        if device == "cuda" and not _ort_cuda_available():
            raise XmkdError(
                "onnxruntime has no usable CUDA execution provider here (it needs the "
                "onnxruntime-gpu package and a CUDA GPU); use onnxruntime-cpu"
            )
        self.session: Any = None

    def load(self, source: ModelSource) -> OnnxRuntimeBackend:
        path = source.onnx_file()
        options = self.ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.session = self.ort.InferenceSession(str(path), options, providers=providers)
        if self.device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise XmkdError("onnxruntime could not start its CUDA execution provider")
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.source = source
        return self

    def _run(self, windows: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: windows})[0]


class TensorRTBackend(Backend):
    """A TensorRT engine built from the exported ONNX (cached), run on its own CUDA stream."""

    name = "tensorrt"

    def __init__(self, precision: str = "fp32", max_batch: int = 8):
        super().__init__()
        from engines.tensorrt import load_tensorrt

        self.trt = load_tensorrt()
        if not torch.cuda.is_available():
            from engines.tensorrt import TRT_HINT

            raise XmkdError(f"TensorRT needs a CUDA GPU and none is visible to torch; {TRT_HINT}")
        self.precision = precision
        self.max_batch = max_batch
        self.runner: Any = None
        self.plan_path: Path | None = None
        self.built_now = False

    def load(self, source: ModelSource) -> TensorRTBackend:
        from engines.tensorrt import TrtRunner, build_or_load_engine, profile_for_onnx

        if source.plan_path is not None:
            plan, self.plan_path = source.plan_path.read_bytes(), source.plan_path
        else:
            path = source.onnx_file("TensorRT")
            profile = profile_for_onnx(path, source.window, max_batch=self.max_batch)
            plan, self.plan_path, self.built_now = build_or_load_engine(
                path,
                profile,
                self.precision,
                trt=self.trt,  # type: ignore[arg-type]
            )
        self.runner = TrtRunner(plan, trt=self.trt)
        self.source = source
        return self

    def _run(self, windows: np.ndarray) -> np.ndarray:
        return self.runner(torch.from_numpy(windows)).float().cpu().numpy()


# --------------------------------------------------------------------------------------------
# Selection


def _ort_cuda_available() -> bool:
    if importlib.util.find_spec("onnxruntime") is None or not torch.cuda.is_available():
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def availability() -> dict[str, str | None]:
    """Each concrete backend -> None when it can run here, else the reason it cannot."""
    cuda = torch.cuda.is_available()
    no_gpu = "no CUDA GPU is visible to torch"
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    has_onnx = importlib.util.find_spec("onnx") is not None
    no_ort = 'onnxruntime/onnx are not installed (pip install "xmkd[onnx]")'
    reasons: dict[str, str | None] = {}
    if importlib.util.find_spec("tensorrt") is None:
        reasons["tensorrt"] = "the tensorrt package is not installed"
    else:
        reasons["tensorrt"] = None if cuda and has_onnx else (no_gpu if not cuda else no_ort)
    if not (has_ort and has_onnx):
        reasons["onnxruntime-cuda"] = no_ort
        reasons["onnxruntime-cpu"] = no_ort
    else:
        reasons["onnxruntime-cuda"] = (
            None if _ort_cuda_available() else "onnxruntime has no CUDA execution provider or GPU"
        )
        reasons["onnxruntime-cpu"] = None
    reasons["torch-cuda"] = None if cuda else no_gpu
    reasons["torch-cpu"] = None
    return reasons


def resolve_backend(name: str, source: ModelSource | None = None) -> str:
    """The concrete backend ``name`` means here (``auto``, ``torch``, ``onnxruntime`` pick the
    best available variant). A source with only an ONNX file excludes the PyTorch backends."""
    if name not in ALIASES:
        raise XmkdError(f"unknown engine {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    reasons = availability()
    if source is not None and not source.students:
        for key in ("torch-cuda", "torch-cpu"):
            reasons[key] = "PyTorch needs the checkpoint, not an ONNX file"
    target = ALIASES[name]
    if target is not None:
        if reasons[target] is not None:
            raise XmkdError(f"the {target} engine is not available: {reasons[target]}")
        return target
    family = {"auto": "", "onnxruntime": "onnxruntime", "ort": "onnxruntime", "torch": "torch"}
    candidates = [b for b in AUTO_ORDER if b.startswith(family[name])]
    for candidate in candidates:
        if reasons[candidate] is None:
            return candidate
    why = "; ".join(f"{c}: {reasons[c]}" for c in candidates)
    raise XmkdError(f"no {name} engine can run here ({why})")


def create_backend(name: str, precision: str = "fp32") -> Backend:
    """An unloaded backend for a concrete name (see :data:`AUTO_ORDER`)."""
    if name == "tensorrt":
        return TensorRTBackend(precision=precision)
    if precision != "fp32":
        raise XmkdError(f"--fp16 is for the TensorRT engine; {name} runs FP32")
    if name.startswith("onnxruntime-"):
        return OnnxRuntimeBackend(device=name.split("-", 1)[1])
    if name.startswith("torch-"):
        return TorchBackend(device=name.split("-", 1)[1])
    raise XmkdError(f"unknown engine {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")


def open_backend(name: str, source: ModelSource, precision: str = "fp32") -> Backend:
    """Resolve ``name`` (``auto`` etc.), create the backend and load ``source`` into it; for
    ``auto``, race ONNX Runtime against PyTorch on the same device (see the module's notes)."""
    target = resolve_backend(name, source)
    backend = create_backend(target, precision).load(source)
    rival = _rival(name, target, source)
    if rival is None:
        return backend
    return faster_backend(backend, create_backend(rival).load(source))


def choose_continual(requested: bool | None, engine: str, source: ModelSource) -> tuple[bool, str]:
    """Whether the live path runs continually (``engines.continual``) and the line that says
    why: ``requested`` True (``--continual``) needs a model that can (else one sentence),
    False never; None lets ``engine`` ``auto`` choose it when the model can, the regular
    window path otherwise, with the reason."""
    from engines.continual import continual_reason

    reason = continual_reason(source)
    if requested:
        if reason is not None:
            raise XmkdError(f"--continual: this model cannot run continually: {reason}")
        return True, "continual inference (asked for)"
    if requested is False or engine != "auto":
        return False, ""
    if reason is None and resolve_backend("auto", source) not in ("onnxruntime-cpu", "torch-cpu"):
        # Measured on an H200 (bench/bench_continual.py, reference ST-GCN, T=300): the whole
        # window takes 3.0 ms and a continual step of 4 frames 4.7 ms (small kernels, launch
        # bound), so a GPU gains nothing per frame and the regular path has no 76-frame delay.
        return False, (
            "auto: the regular window path on the GPU (a whole window costs about as much "
            "there as a continual step; --continual to run it anyway)"
        )
    if reason is None:
        return True, (
            "auto: continual inference (an ST-GCN on 'pad' windows: one small step per 4 "
            "frames instead of the whole window)"
        )
    return False, f"auto: the regular window path, not continual: {reason}"


def _rival(name: str, target: str, source: ModelSource) -> str | None:
    """The backend ``auto`` races against ``target``: the other family on the same device."""
    if name != "auto" or target == "tensorrt":
        return None
    family, device = target.split("-", 1)
    if family == "onnxruntime" and not source.students:
        return None  # an ONNX file alone: PyTorch has nothing to run
    rival = f"{'torch' if family == 'onnxruntime' else 'onnxruntime'}-{device}"
    return rival if availability().get(rival) is None else None


def faster_backend(a: Backend, b: Backend, rounds: int = 7, budget_s: float = 2.0) -> Backend:
    """Of two loaded backends of the same model, the one with the lower median batch-1
    latency on the model's window, timed interleaved after a warm-up of each; the winner's
    ``selection`` says what was measured and its latency history starts empty.

    At most ``rounds`` rounds, and no more once ``budget_s`` has passed after the second (a
    reference-size model on a small CPU takes a second or two per window: the start of a live
    session should not wait for a long race)."""
    for backend in (a, b):
        backend.warm_up(iterations=2)
    spec = a.source.spec
    x = np.zeros((1, 3, spec.window, 25, spec.num_persons), dtype=np.float32)
    times: dict[int, list[float]] = {0: [], 1: []}
    race_start = time.perf_counter()
    for done in range(rounds):
        if done >= 2 and time.perf_counter() - race_start > budget_s:
            break
        for i, backend in enumerate((a, b)):
            start = time.perf_counter()
            backend.classify(x)
            times[i].append(time.perf_counter() - start)
    median = [float(np.median(times[i])) * 1000 for i in (0, 1)]
    winner, loser = (a, b) if median[0] <= median[1] else (b, a)
    ms = dict(zip((a.name, b.name), median))
    winner.selection = (
        f"auto: {winner.name} {ms[winner.name]:.2f} ms vs {loser.name} {ms[loser.name]:.2f} ms "
        f"per window (median of {len(times[0])})"
    )
    winner.reset_latency()
    return winner
