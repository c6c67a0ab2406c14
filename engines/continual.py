"""Runtime of continual ST-GCN inference: the step of :class:`xmkd.models.stgcn_continual.
ContinualSTGCN` run by PyTorch, ONNX Runtime or TensorRT with its state as explicit tensors.

    ensemble = continual_ensemble(source)              # a ModelSource of ST-GCN students
    export_continual(ensemble, "step.onnx")            # parity with the torch step checked
    stepper = ContinualStepper.open("onnxruntime-cpu", ensemble, onnx_path="step.onnx")
    state = stepper.start()
    probs = stepper.push(state, frame)                 # (3, 25, M) frame -> probs every 4th

The exported graph has the input ``frames`` (N, 3, CHUNK, 25, M), one input ``state_<name>``
per state tensor and the outputs ``probs`` (N, classes; the students' softmax combined by the
ensemble rule, as :mod:`engines.export` does), ``ready`` (1,: columns in the pooled mean; 0 means
no prediction yet) and ``next_<name>`` per state tensor. All shapes are static (the batch is
fixed at export; one live body is batch 1), so TensorRT needs no dynamic profile: each input's
profile is its own shape (:func:`engines.tensorrt.build_or_load_engine`'s ``input_shapes``).
An export is written under a temporary name and renamed into place only after ONNX Runtime ran
``PARITY_STEPS`` random steps with the same probabilities and states as the torch step (1e-4).

Why xmkd does not use the ``continual-inference`` library (PyPI, the authors' own): its layers
(``co.Conv2d``, ``co.Residual``...) replace the model's modules, so xmkd's ST-GCN would exist
twice with different module trees and keys, the graph convolution's einsum is not one of its
layers, and its per-frame steps decide in the graph whether a strided layer emits (every layer
runs every frame in an exported graph); here the trained modules are reused as they are and the
step of four frames is one static graph in which the strided blocks simply get fewer columns.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.backends import LatencyStats
from engines.export import (
    TOLERANCE,
    _set_metadata,
    combine_probabilities,
    load_onnx,
    onnx_session,
)
from xmkd.errors import XmkdError, require
from xmkd.models.stgcn import STGCN
from xmkd.models.stgcn_continual import ContinualSTGCN, supports_continual

FRAMES_NAME = "frames"
PROBS_NAME = "probs"
READY_NAME = "ready"
#: Random steps the exported step is run for, carrying its state, in the parity check (enough
#: for the first final column of the reference layout to enter the pooled mean: 20 steps).
PARITY_STEPS = 24
#: Backends the continual step runs on.
CONTINUAL_BACKENDS = ("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")


class ContinualEnsemble(nn.Module):
    """K continual ST-GCN students as one step: (frames, *states) -> (probs, ready, *states)."""

    def __init__(self, students: Sequence[ContinualSTGCN], rule: str = "mean"):
        super().__init__()
        if not students:
            raise XmkdError("a continual ensemble needs at least one student")
        chunks = {s.chunk for s in students}
        if len(chunks) != 1:
            raise XmkdError(f"the students step by different numbers of frames {sorted(chunks)}")
        self.students = nn.ModuleList(students)
        self.rule = rule
        self.chunk = chunks.pop()
        self.persons = students[0].persons
        self._sizes = [len(s.state_names()) for s in students]

    def state_names(self) -> list[str]:
        return [f"s{k}_{n}" for k, s in enumerate(self.students) for n in s.state_names()]

    def initial_state(self, batch: int = 1, device: Any = None) -> tuple[torch.Tensor, ...]:
        return tuple(t for s in self.students for t in s.initial_state(batch, device))

    def _split(self, state: Sequence[torch.Tensor]) -> list[Sequence[torch.Tensor]]:
        parts, start = [], 0
        for size in self._sizes:
            parts.append(state[start : start + size])
            start += size
        return parts

    def forward(self, frames: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        probs, ready, new_state = [], [], []
        for student, part in zip(self.students, self._split(state)):
            logits, r, *rest = student(frames, *part)
            probs.append(logits.softmax(dim=-1))
            ready.append(r)
            new_state.extend(rest)
        combined = combine_probabilities(torch.stack(probs), self.rule)  # type: ignore[arg-type]
        return (combined, torch.stack(ready).amin(dim=0), *new_state)

    def flush(self, state: Sequence[torch.Tensor], pending: torch.Tensor | None) -> torch.Tensor:
        """Probabilities of the equal variant (each student's ``flush``), torch only."""
        from xmkd.models.stgcn_continual import ContinualState

        probs = []
        for student, part in zip(self.students, self._split(state)):
            logits = student.flush(ContinualState(tuple(part), pending))
            if logits is None:
                raise XmkdError("no frame has been stepped since the reset")
            probs.append(logits.softmax(dim=-1))
        return combine_probabilities(torch.stack(probs), self.rule)  # type: ignore[arg-type]


def continual_ensemble(source: Any, window: int | None = None) -> ContinualEnsemble:
    """The continual form of a :class:`engines.backends.ModelSource`'s students (its checkpoint
    is needed: an ONNX file holds no step), pooling over ``window`` frames (default the spec's);
    one sentence when a student or the input spec cannot run continually."""
    if not source.students:
        raise XmkdError(
            f"{source.onnx_path}: continual inference needs the checkpoint (an exported window "
            "model has no step function)"
        )
    for student in source.students:
        arch = "stgcn" if isinstance(student, STGCN) else type(student).__name__.lower()
        reason = supports_continual(arch, source.spec)
        if reason is not None:
            raise XmkdError(f"this model cannot run continually: {reason}")
    window = int(window or source.spec.window)
    persons = int(source.spec.num_persons)
    students = [ContinualSTGCN(s.eval(), window, persons).eval() for s in source.students]
    return ContinualEnsemble(students, source.rule).eval()


def continual_reason(source: Any) -> str | None:
    """None when the model of ``source`` (a ``ModelSource``) can run continually, else why not
    (one sentence, for ``auto``'s line and ``--continual``'s error)."""
    if not source.students:
        return (
            f"{Path(str(source.onnx_path)).name} is an exported window model; continual "
            "inference needs the students checkpoint"
        )
    for student in source.students:
        arch = "stgcn" if isinstance(student, STGCN) else type(student).__name__.lower()
        reason = supports_continual(arch, source.spec)
        if reason is not None:
            return reason
    return None


def open_continual(
    engine: str, source: Any, threads: int | None = None, progress: Any = None
) -> ContinualStepper:
    """A :class:`ContinualStepper` of ``source``'s students on ``engine`` (a name of
    ``engines.choices.BACKEND_CHOICES``: ``auto`` and the families resolve as for the window
    backends, :func:`engines.backends.resolve_backend`). ONNX Runtime and TensorRT run the step
    exported once and cached under ``$XMKD_CACHE/continual`` (keyed by the weights, window and
    rule); ``progress`` is told about an export. One sentence when the model cannot run
    continually or the engine is not available."""
    from engines.backends import _weights_digest, resolve_backend

    reason = continual_reason(source)
    if reason is not None:
        raise XmkdError(f"this model cannot run continually: {reason}")
    target = resolve_backend(engine, source)
    ensemble = continual_ensemble(source)
    onnx_path = None
    if not target.startswith("torch"):
        from engines.tensorrt import cache_dir

        key = hashlib.sha256(
            f"{_weights_digest(source.students)}|{source.window}|{source.rule}|"
            f"{source.spec.num_persons}".encode()
        ).hexdigest()[:24]
        onnx_path = cache_dir() / "continual" / f"step-{key}.onnx"
        if not _cached_step_ok(onnx_path, key):
            say = progress or (lambda text: None)
            say(f"exporting the continual step to ONNX for {target} (once; cached at {onnx_path})")
            export_continual(
                ensemble,
                onnx_path,
                metadata={
                    "class_names": list(source.class_names),
                    "input_spec": source.spec.to_dict(),
                    "cache_key": key,
                },
            )
    stepper = ContinualStepper.open(target, ensemble, onnx_path=onnx_path, threads=threads)
    stepper.source = source
    return stepper


def _cached_step_ok(path: Path, key: str) -> bool:
    """A cached step export may be reused: readable, made from these weights, parity passed."""
    from engines.export import read_metadata

    if not path.is_file():
        return False
    try:
        info = read_metadata(path)
        parity = info["parity"]
        worst = max(float(parity["probs_max_abs_diff"]), float(parity["state_max_abs_diff"]))
    except Exception:  # anything unreadable is exported again
        return False
    return info.get("cache_key") == key and math.isfinite(worst) and worst <= parity["tolerance"]


# --------------------------------------------------------------------------------------------
# Export


@dataclass
class ContinualExport:
    path: Path
    batch: int
    chunk: int
    state_names: list[str]
    #: largest |ONNX - torch| of the probabilities and of the state over the parity steps
    probs_max_abs_diff: float = math.nan
    state_max_abs_diff: float = math.nan
    steps: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        worst = max(self.probs_max_abs_diff, self.state_max_abs_diff)
        return math.isfinite(worst) and worst <= TOLERANCE["fp32"]


def export_continual(
    ensemble: ContinualEnsemble,
    path: str | Path,
    batch: int = 1,
    opset: int = 17,
    metadata: dict[str, Any] | None = None,
    steps: int = PARITY_STEPS,
) -> ContinualExport:
    """Export the step to ``path`` (TorchScript exporter: the graph is static, and it exports in
    seconds) and check it with ONNX Runtime against the torch step over ``steps`` random steps
    carrying the state; the file is renamed into place only when the check passes."""
    onnx = require("onnx", "onnx", "ONNX export")
    ensemble = ensemble.eval()
    names = ensemble.state_names()
    input_names = [FRAMES_NAME, *(f"state_{n}" for n in names)]
    output_names = [PROBS_NAME, READY_NAME, *(f"next_{n}" for n in names)]
    v = int(ensemble.students[0].A.shape[-1])
    frames = torch.zeros(
        batch, ensemble.students[0].in_channels, ensemble.chunk, v, ensemble.persons
    )
    state = ensemble.initial_state(batch, "cpu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.unchecked.onnx")
    result = ContinualExport(path, batch, ensemble.chunk, names)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            try:
                torch.onnx.export(
                    ensemble,
                    (frames, *state),
                    str(tmp),
                    input_names=input_names,
                    output_names=output_names,
                    opset_version=opset,
                    dynamo=False,
                )
            except Exception as exc:  # exporter failures are long; keep the first line
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise XmkdError(
                    f"ONNX export of the continual step to {path} failed: {first}"
                ) from None
        check_step_parity(ensemble, tmp, result, steps)
        if not result.passed:
            raise XmkdError(
                f"{path}: the exported continual step disagrees with PyTorch's (probabilities "
                f"{result.probs_max_abs_diff:.2e}, state {result.state_max_abs_diff:.2e} over "
                f"{result.steps} steps; tolerance {TOLERANCE['fp32']:.0e})"
            )
        info = {
            "continual": True,
            "chunk": ensemble.chunk,
            "batch": batch,
            "persons": ensemble.persons,
            "window": ensemble.students[0].window,
            "delay_frames": ensemble.students[0].delay,
            "ensemble": ensemble.rule,
            "state_names": names,
            "parity": {
                "probs_max_abs_diff": result.probs_max_abs_diff,
                "state_max_abs_diff": result.state_max_abs_diff,
                "steps": result.steps,
                "tolerance": TOLERANCE["fp32"],
            },
            **(metadata or {}),
        }
        proto = load_onnx(tmp)
        _set_metadata(proto, info)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
        result.metadata = info
    finally:
        tmp.unlink(missing_ok=True)
    return result


def check_step_parity(
    ensemble: ContinualEnsemble, onnx_path: str | Path, result: ContinualExport, steps: int
) -> None:
    """Run ``steps`` random steps (metre-scale values) through torch and ONNX Runtime, each
    carrying its own state; record the largest differences into ``result``."""
    session = onnx_session(onnx_path)
    rng = np.random.default_rng(0)
    shape = (result.batch, 3, ensemble.chunk, 25, ensemble.persons)
    torch_state = ensemble.initial_state(result.batch, "cpu")
    ort_state = [t.numpy() for t in torch_state]
    probs_diff = state_diff = 0.0
    for _ in range(steps):
        x = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        with torch.no_grad():
            probs, _ready, *torch_state = ensemble(torch.from_numpy(x), *torch_state)
        feed = {FRAMES_NAME: x, **{f"state_{n}": s for n, s in zip(result.state_names, ort_state)}}
        out = session.run(None, feed)
        ort_state = out[2:]
        probs_diff = max(probs_diff, _diff(out[0], probs.numpy()))
        for a, b in zip(ort_state, torch_state):
            state_diff = max(state_diff, _diff(a, b.numpy()))
    result.probs_max_abs_diff, result.state_max_abs_diff, result.steps = (
        probs_diff,
        state_diff,
        steps,
    )


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    return float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0


def continual_input_shapes(onnx_path: str | Path) -> dict[str, tuple[tuple[int, ...], ...]]:
    """TensorRT profile of an exported step: every input (frames and state) at its own static
    shape as min, opt and max."""
    proto = load_onnx(onnx_path)
    shapes = {}
    for tensor in proto.graph.input:
        dims = tuple(d.dim_value for d in tensor.type.tensor_type.shape.dim)
        if any(d <= 0 for d in dims):
            raise XmkdError(f"{onnx_path}: input {tensor.name} has a dynamic shape {dims}")
        shapes[tensor.name] = (dims, dims, dims)
    return shapes


# --------------------------------------------------------------------------------------------
# Runtime


@dataclass
class StepState:
    """One stream's continual state (one tracked body): the step's tensors (torch or numpy,
    as the backend wants them) and the frames of the chunk being filled."""

    tensors: list[Any]
    pending: list[np.ndarray] = field(default_factory=list)
    frames: int = 0  # frames pushed since the reset


class ContinualStepper:
    """Runs a continual ensemble's step on one backend; one :class:`StepState` per stream.

    ``push`` takes one preprocessed frame (3, 25, M) and returns the probabilities when the
    frame completes a step and the pooled mean holds a column, else None. ``exact`` (torch only)
    returns the equal variant's probabilities instead (:meth:`ContinualSTGCN.flush`) at every
    completed step, from the first one on.
    """

    def __init__(self, name: str, ensemble: ContinualEnsemble, run: Any, exact: bool = False):
        self.name = name
        self.ensemble = ensemble
        self._run = run
        self.exact = exact
        self._times: deque[float] = deque(maxlen=1000)
        self._lock = threading.Lock()
        #: the engines.backends.ModelSource this stepper runs (set by :func:`open_continual`):
        #: the streaming classifier takes class names, input spec and stream metadata from it
        self.source: Any = None
        #: one line: which engine and why (the ``auto`` choice), for the user
        self.selection = ""

    @classmethod
    def open(
        cls,
        backend: str,
        ensemble: ContinualEnsemble,
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        exact: bool = False,
    ) -> ContinualStepper:
        """A stepper on ``backend`` (one of :data:`CONTINUAL_BACKENDS`); ONNX Runtime and
        TensorRT run ``onnx_path`` (a checked :func:`export_continual` file)."""
        if backend not in CONTINUAL_BACKENDS:
            raise XmkdError(
                f"unknown continual engine {backend!r}; "
                f"choose one of {', '.join(CONTINUAL_BACKENDS)}"
            )
        if exact and not backend.startswith("torch"):
            raise XmkdError("the exact continual prediction (flush) runs on the torch engines only")
        if backend.startswith("torch"):
            device = torch.device(backend.split("-", 1)[1])
            if device.type == "cuda" and not torch.cuda.is_available():
                raise XmkdError("the torch-cuda engine needs a CUDA GPU; none is visible to torch")
            model = ensemble.to(device).eval()

            def run(frames: np.ndarray, state: list[Any]) -> tuple[Any, float, list[Any]]:
                with torch.inference_mode():
                    x = torch.from_numpy(frames).to(device)
                    probs, ready, *new = model(x, *state)
                    return probs, float(ready), new

            stepper = cls(backend, ensemble, run, exact)
            stepper._device = device
            return stepper
        if onnx_path is None:
            raise XmkdError(f"the {backend} continual engine needs an exported step (.onnx)")
        if backend == "tensorrt":
            return cls(backend, ensemble, _tensorrt_run(onnx_path), exact)
        ort = require("onnxruntime", "onnx", "The onnxruntime continual engine")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if backend == "onnxruntime-cuda":
            providers.insert(0, "CUDAExecutionProvider")
        session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        names = [f"state_{n}" for n in ensemble.state_names()]

        def run_ort(frames: np.ndarray, state: list[Any]) -> tuple[Any, float, list[Any]]:
            out = session.run(None, {FRAMES_NAME: frames, **dict(zip(names, state))})
            return out[0], float(out[1][0]), out[2:]

        return cls(backend, ensemble, run_ort, exact)

    def start(self) -> StepState:
        """A fresh state (a reset)."""
        state = self.ensemble.initial_state(1, "cpu")
        if self.name.startswith("torch"):
            return StepState([t.to(self._device) for t in state])
        return StepState([t.numpy() for t in state])

    @property
    def window(self) -> int:
        """Frames of the regular model's window (the pooled mean covers its columns)."""
        return int(self.ensemble.students[0].window)

    def push(self, state: StepState, frame: np.ndarray) -> np.ndarray | None:
        """Add one frame (3, V, M) to ``state``; probabilities (classes,) or None."""
        return self._push(state, frame, record=True)

    def _push(self, state: StepState, frame: np.ndarray, record: bool) -> np.ndarray | None:
        state.pending.append(np.asarray(frame, dtype=np.float32))
        state.frames += 1
        if len(state.pending) < self.ensemble.chunk:
            return None
        frames = np.ascontiguousarray(np.stack(state.pending, axis=1)[None])
        state.pending.clear()
        start = time.perf_counter()
        with self._lock:
            probs, ready, state.tensors = self._run(frames, state.tensors)
            if self.exact:
                with torch.inference_mode():
                    probs = self.ensemble.flush(state.tensors, None)
                ready = 1.0
        if record:
            self._times.append(time.perf_counter() - start)
        if ready <= 0:
            return None
        if isinstance(probs, torch.Tensor):
            probs = probs.float().cpu().numpy()
        return np.asarray(probs, dtype=np.float32)[0]

    @staticmethod
    def copy(state: StepState) -> StepState:
        """An independent copy of ``state`` (a step never writes into its input tensors, so
        the tensors are shared, not copied)."""
        return StepState(list(state.tensors), list(state.pending), state.frames)

    def window_probs(self, state: StepState) -> np.ndarray | None:
        """The equal variant for a padded window: the probabilities of the regular model on
        the window ``xmkd.preprocess.prepare_window`` makes of the frames since the reset (at
        the start, zero frames after them up to the window), to float32 rounding; None before
        any frame or after more than a window of frames. ``state`` is not changed.

        The zero frames are stepped into a copy of the state (a zero frame is what a "pad"
        window holds after its clip), then :meth:`ContinualSTGCN.flush` gives the regular
        model on exactly ``window`` frames. It costs (window - frames) / 4 steps plus a flush:
        little for a short window, about a full-window recompute for a reference window
        holding a short clip; the live path uses it only where a source marks a clip's end.
        """
        if not 0 < state.frames <= self.window:
            return None
        padded = self.copy(state)
        zero = np.zeros_like(padded.pending[0] if padded.pending else self._frame_zeros())
        for _ in range(self.window - padded.frames):
            self._push(padded, zero, record=False)
        return self.flush_probs(padded)

    def flush_probs(self, state: StepState) -> np.ndarray:
        """:meth:`ContinualSTGCN.flush` of ``state`` (the regular model on the frames since the
        reset, without padding after them), on torch whatever the step's engine."""
        device = next(self.ensemble.parameters()).device
        tensors = [torch.as_tensor(t).to(device) for t in state.tensors]
        pending = None
        if state.pending:
            stacked = np.ascontiguousarray(np.stack(state.pending, axis=1)[None])
            pending = torch.from_numpy(stacked).to(device)
        with self._lock, torch.inference_mode():
            probs = self.ensemble.flush(tensors, pending)
        return probs.float().cpu().numpy()[0]

    def _frame_zeros(self) -> np.ndarray:
        student = self.ensemble.students[0]
        return np.zeros(
            (student.in_channels, int(student.A.shape[-1]), self.ensemble.persons), np.float32
        )

    def latency(self) -> LatencyStats:
        """Latency of the steps (a step every ``chunk`` frames)."""
        return LatencyStats.of(list(self._times))


def _tensorrt_run(onnx_path: str | Path) -> Any:
    """The step as a TensorRT engine (built once and cached by :mod:`engines.tensorrt`, every
    state tensor at its static shape in the profile); state stays on the GPU between steps."""
    from engines.tensorrt import (
        ShapeProfile,
        _torch_dtype,
        build_or_load_engine,
        load_tensorrt,
    )

    trt = load_tensorrt()
    if not torch.cuda.is_available():
        raise XmkdError("TensorRT needs a CUDA GPU and none is visible to torch")
    shapes = continual_input_shapes(onnx_path)
    frames_shape = shapes[FRAMES_NAME][0]
    profile = ShapeProfile(
        batch=(frames_shape[0],) * 3,
        window=(frames_shape[2],) * 3,
        channels=frames_shape[1],
        joints=frames_shape[3],
        persons=frames_shape[4],
    )
    plan, _path, _built = build_or_load_engine(
        onnx_path, profile, "fp32", trt=trt, input_shapes=shapes
    )
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise XmkdError("TensorRT could not deserialize the continual step engine")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = [n for n in names if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT]
    device = torch.device("cuda")
    stream = torch.cuda.Stream(device=device)
    state_inputs = [n for n in names if n.startswith("state_")]

    def run(frames: np.ndarray, state: list[Any]) -> tuple[Any, float, list[Any]]:
        with torch.cuda.stream(stream):
            tensors = {FRAMES_NAME: torch.from_numpy(frames).to(device)}
            for n, s in zip(state_inputs, state):
                tensors[n] = torch.as_tensor(s).to(device).contiguous()
            for n in outputs:
                tensors[n] = torch.empty(
                    tuple(context.get_tensor_shape(n)),
                    dtype=_torch_dtype(trt, engine.get_tensor_dtype(n)),
                    device=device,
                )
            for n, t in tensors.items():
                context.set_tensor_address(n, t.data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise XmkdError("TensorRT failed to enqueue the continual step")
            stream.synchronize()
        new = [tensors[f"next_{n[len('state_') :]}"] for n in state_inputs]
        return tensors[PROBS_NAME], float(tensors[READY_NAME][0]), new

    return run
