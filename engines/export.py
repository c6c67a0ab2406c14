"""Export of a students checkpoint to ONNX as one model that outputs the ensemble's probabilities,
with an automatic parity check against PyTorch.

The exported graph takes preprocessed windows ``skeleton`` (N, 3, T, 25, M) float32 (the output
of :func:`xmkd.preprocess.prepare_batch`, which stays outside the graph so training, evaluation
and every runtime share one preprocessing) and returns ``probs`` (N, classes): the students'
softmax probabilities combined by the ensemble rule (mean by default, element-wise max as an
option, the paper's Table 3).

Dynamic axes: batch always; window when every student allows it (ST-GCN pools with a mean over
time, so any T works; HCN's fc7 size fixes T to its ``window_size``).

Exporters: torch's default (the dynamo/torch.export exporter, native opset 18, dynamic shapes
via ``torch.export.Dim``) or the TorchScript exporter (``dynamo=False``, ``dynamic_axes``;
deprecated by torch but 20x faster to export and able to write opset 17).

Every export is checked with ONNX Runtime against the PyTorch ensemble on random windows (also at
other batch sizes/windows when those axes are dynamic) and on real windows when given (NTU
``.skeleton`` files through the shared preprocessing); the largest absolute difference of the
probabilities is reported and an export above the tolerance (1e-4 for FP32) fails, as does one
with any NaN or infinite output (NaN compares false with everything, so it is checked apart).
An export is written under a temporary name and renamed to its path only once its parity check
passed, so a failed export never sits where a cache would find it; the parity report is stored in
the file's metadata and :func:`cached_export_ok` checks it (and the source's key) before a cached
file is reused. Students with NaN or infinite weights are refused before exporting, and ONNX files
that are not readable, carry no usable xmkd metadata or hold non-finite initializers are refused
with one sentence naming the file (:func:`load_onnx`, :func:`verified_metadata`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from xmkd.checkpoint import ENSEMBLE_RULES
from xmkd.errors import XmkdError, require

EnsembleRule = Literal["mean", "max"]
Exporter = Literal["dynamo", "torchscript"]
INPUT_NAME = "skeleton"
OUTPUT_NAME = "probs"
#: Parity tolerance on probabilities (max abs difference) per precision.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
#: Key of the JSON metadata xmkd stores in the ONNX file's metadata_props.
METADATA_KEY = "xmkd"


def combine_probabilities(probs: torch.Tensor, rule: EnsembleRule = "mean") -> torch.Tensor:
    """Combine per-student probabilities (K, N, C) into (N, C): mean, or element-wise max.

    The torch twin of ``xmkd.evaluate.ensemble_probs`` (numpy, used by ``xmkd eval``), needed
    here because the rule is part of the exported graph; a test keeps the two equal. The max
    rule is not renormalised: it is what the paper compares (Table 3), and the argmax,
    the only thing the ensemble decides, is the same either way.
    """
    if rule == "mean":
        return probs.mean(dim=0)
    if rule == "max":
        return probs.amax(dim=0)
    raise XmkdError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(ENSEMBLE_RULES)}")


class Ensemble(nn.Module):
    """K students as one module: (N, 3, T, 25, M) windows -> (N, C) combined probabilities."""

    def __init__(self, students: Sequence[nn.Module], rule: EnsembleRule = "mean"):
        super().__init__()
        if not students:
            raise XmkdError("an ensemble needs at least one student")
        if rule not in ENSEMBLE_RULES:
            raise XmkdError(
                f"unknown ensemble rule {rule!r}; choose one of {', '.join(ENSEMBLE_RULES)}"
            )
        self.students = nn.ModuleList(students)
        self.rule = rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([student(x).softmax(dim=-1) for student in self.students])
        return combine_probabilities(probs, self.rule)

    @property
    def fixed_window(self) -> int | None:
        """The window every student requires, or None when any window works.

        Students with a ``window_size`` attribute (HCN) fix it; students disagreeing is an error.
        """
        windows = {int(s.window_size) for s in self.students if hasattr(s, "window_size")}
        if len(windows) > 1:
            raise XmkdError(
                f"the students need different windows {sorted(windows)}; "
                "they cannot share one input"
            )
        return windows.pop() if windows else None


def as_ensemble(model: nn.Module | Sequence[nn.Module], rule: EnsembleRule = "mean") -> Ensemble:
    """An :class:`Ensemble` from an ensemble, one student, or a list of students (eval mode)."""
    if isinstance(model, Ensemble):
        return model.eval()
    students = [model] if isinstance(model, nn.Module) else list(model)
    return Ensemble(students, rule).eval()


def _on_cpu(ensemble: Ensemble) -> Ensemble:
    """The ensemble on the CPU; a copy when it lives elsewhere (``.cpu()`` would move the
    caller's modules, e.g. those a CUDA backend is using)."""
    if all(p.device.type == "cpu" for p in ensemble.parameters()):
        return ensemble
    return copy.deepcopy(ensemble).cpu()


# --------------------------------------------------------------------------------------------
# Export


@dataclass
class ParityReport:
    """Max abs difference of the exported model's probabilities vs PyTorch."""

    precision: str
    tolerance: float
    random_max_abs_diff: float
    random_shapes: list[list[int]]
    real_max_abs_diff: float | None = None
    real_windows: int = 0
    #: NaN or infinite probabilities from ONNX Runtime or PyTorch (any fails the check).
    nonfinite_outputs: int = 0
    #: Largest spread (max - min) of PyTorch's probabilities of one input; far below the
    #: tolerance the outputs hardly depend on the input and the check proves little.
    output_spread: float | None = None

    @property
    def max_abs_diff(self) -> float:
        diffs = [self.random_max_abs_diff]
        if self.real_max_abs_diff is not None:
            diffs.append(self.real_max_abs_diff)
        return max(diffs)

    @property
    def passed(self) -> bool:
        return not self.nonfinite_outputs and self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        text = f"random inputs {self.random_max_abs_diff:.2e} ({len(self.random_shapes)} shapes)"
        if self.real_max_abs_diff is not None:
            text += f", real windows {self.real_max_abs_diff:.2e} ({self.real_windows} windows)"
        else:
            text += ", no real windows checked"
        if self.nonfinite_outputs:
            text += f", {self.nonfinite_outputs} NaN or infinite outputs"
        if self.output_spread is not None and self.output_spread < self.tolerance:
            text += " (outputs nearly constant: an untrained model? the check proves little)"
        verdict = "ok" if self.passed else "FAILED"
        return f"max abs diff {text}; tolerance {self.tolerance:.0e} ({self.precision}): {verdict}"


@dataclass
class ExportResult:
    path: Path
    window: int
    dynamic_batch: bool
    dynamic_window: bool
    opset: int
    exporter: str
    precision: str
    parity: ParityReport | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _onnx() -> Any:
    return require("onnx", "onnx", "ONNX export")


def export_onnx(
    model: nn.Module | Sequence[nn.Module],
    path: str | Path,
    window: int,
    *,
    rule: EnsembleRule = "mean",
    persons: int = 2,
    opset: int = 18,
    dynamic_batch: bool = True,
    dynamic_window: bool | None = None,
    exporter: Exporter = "dynamo",
    metadata: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export students (or an :class:`Ensemble`) to ``path`` as one FP32 ONNX model.

    ``progress(stage)`` is told each stage as it starts ("tracing", "writing"): an export takes
    tens of seconds on a small CPU and a caller may want to say so.

    ``dynamic_window`` None means "when the architecture allows" (no student fixes the window).
    ``metadata`` (class names, input spec, ...) is stored as JSON in the file's metadata_props.
    No parity check here: see :func:`check_parity` / :func:`export_checked`.
    """
    onnx = _onnx()
    if exporter == "dynamo":
        require("onnxscript", "onnx", "The dynamo ONNX exporter")
    ensemble = _on_cpu(as_ensemble(model, rule))
    for name, tensor in ensemble.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise XmkdError(
                f"cannot export to {path}: weight '{name}' holds NaN or infinite values "
                "(training diverged?)"
            )
    fixed = ensemble.fixed_window
    if fixed is not None and window != fixed:
        raise XmkdError(f"these students need windows of {fixed} frames; got --window {window}")
    if dynamic_window is None:
        dynamic_window = fixed is None
    elif dynamic_window and fixed is not None:
        raise XmkdError(f"the window cannot be dynamic: HCN's fc7 fixes it to {fixed} frames")
    if opset < 17:
        raise XmkdError(f"opset {opset} is too old: xmkd exports opset 17 or newer")
    if exporter == "dynamo" and opset < 18:
        raise XmkdError(
            "the dynamo exporter writes opset 18 or newer; use --exporter torchscript for opset 17"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private generator: exporting must not advance the caller's random state.
    example = torch.randn(2, 3, window, 25, persons, generator=torch.Generator().manual_seed(0))
    tmp = path.with_name(f".{path.name}.tmp")
    old_level = logging.getLogger("torch.onnx").level
    say = progress or (lambda stage: None)
    try:
        say("tracing")
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated (a warning on every call) but still supported.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The dynamo exporter logs a warning per missing optional library (torchvision ops).
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            if exporter == "dynamo":
                dims: dict[int, Any] = {}
                if dynamic_batch:
                    dims[0] = torch.export.Dim("batch", min=1, max=4096)
                if dynamic_window:
                    dims[2] = torch.export.Dim("window", min=4, max=4096)
                torch.onnx.export(
                    ensemble,
                    (example,),
                    str(tmp),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_shapes={"x": dims} if dims else None,
                    external_data=False,
                    dynamo=True,
                    verbose=False,
                )
            elif exporter == "torchscript":
                axes: dict[str, dict[int, str]] = {INPUT_NAME: {}, OUTPUT_NAME: {}}
                if dynamic_batch:
                    axes[INPUT_NAME][0] = axes[OUTPUT_NAME][0] = "batch"
                if dynamic_window:
                    axes[INPUT_NAME][2] = "window"
                torch.onnx.export(
                    ensemble,
                    (example,),
                    str(tmp),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes={k: v for k, v in axes.items() if v},
                    dynamo=False,
                )
            else:
                raise XmkdError(f"unknown exporter {exporter!r} (use dynamo or torchscript)")
        say("writing")
        proto = onnx.load(str(tmp))
        written = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if written != opset:
            raise XmkdError(f"the {exporter} exporter wrote opset {written} instead of {opset}")
        info = {
            "window": window,
            "dynamic_batch": dynamic_batch,
            "dynamic_window": bool(dynamic_window),
            "ensemble": rule,
            "students": len(ensemble.students),
            "precision": "fp32",
            **(metadata or {}),
        }
        _set_metadata(proto, info)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    except XmkdError:
        raise
    except Exception as exc:  # exporter failures are long; keep the first line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise XmkdError(f"ONNX export ({exporter}) of {path} failed: {first[:300]}") from exc
    finally:
        logging.getLogger("torch.onnx").setLevel(old_level)
        tmp.unlink(missing_ok=True)
    return ExportResult(
        path=path,
        window=window,
        dynamic_batch=dynamic_batch,
        dynamic_window=bool(dynamic_window),
        opset=opset,
        exporter=exporter,
        precision="fp32",
        metadata=info,
    )


def _set_metadata(proto: Any, info: dict[str, Any]) -> None:
    """Store ``info`` as the file's xmkd metadata, with the digest of the weights it holds now
    (checked by :func:`verified_metadata`, as checkpoints check theirs)."""
    for prop in list(proto.metadata_props):
        if prop.key == METADATA_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({**info, "weights_sha256": weights_digest(proto)})


def weights_digest(proto: Any) -> str:
    """sha256 over the graph's weights: initializers and Constant nodes' tensors, by name.

    Computed from the decoded arrays, not the protobuf bytes, so it does not depend on how a
    protobuf version serialises the message."""
    from onnx import numpy_helper

    tensors = [(t.name, t) for t in proto.graph.initializer]
    for node in proto.graph.node:
        if node.op_type == "Constant":
            tensors += [(f"{node.name}/{a.name}", a.t) for a in node.attribute if a.name == "value"]
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        array = np.ascontiguousarray(numpy_helper.to_array(tensor))
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_onnx(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of ``path``; one sentence naming the file when it is missing,
    truncated or not ONNX at all (protobuf's DecodeError otherwise ends in a traceback)."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise XmkdError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, RuntimeError, ...: all "not a readable model"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise XmkdError(
            f"{path}: is not a readable ONNX model (truncated or corrupt? {first})"
        ) from None
    if not proto.graph.node and not proto.graph.output:
        raise XmkdError(f"{path}: is not a readable ONNX model (it holds no graph)")
    return proto


def _metadata_of(proto: Any, path: str | Path) -> dict[str, Any]:
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                info = json.loads(prop.value)
            except ValueError:
                info = None
            if not isinstance(info, dict):
                raise XmkdError(f"{path}: its xmkd metadata is not a JSON object (corrupt file?)")
            return info
    return {}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The xmkd metadata (class names, input spec, window, ensemble...) of an exported ONNX file."""
    return _metadata_of(load_onnx(path), path)


def nonfinite_initializer(proto: Any) -> str | None:
    """The name of the first float initializer holding NaN or inf, or None."""
    from onnx import numpy_helper

    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return tensor.name
    return None


def verified_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an ONNX file xmkd is asked to run, after the checks that make it
    trustworthy: readable, xmkd metadata with class names and input spec, no NaN/inf weights,
    and no failed parity check recorded."""
    proto = load_onnx(path)
    info = _metadata_of(proto, path)
    names, spec = info.get("class_names"), info.get("input_spec")
    if not isinstance(names, list) or not names or not isinstance(spec, dict):
        raise XmkdError(
            f"{path}: has no xmkd metadata (class names, input spec); export it with "
            "`xmkd export CHECKPOINT --format onnx`"
        )
    if not all(isinstance(n, str) for n in names):
        raise XmkdError(f"{path}: its xmkd metadata's class names are not all strings")
    _check_spec(spec, path)
    bad = nonfinite_initializer(proto)
    if bad is not None:
        raise XmkdError(f"{path}: weight '{bad}' holds NaN or infinite values; it cannot run")
    stored = info.get("weights_sha256")  # absent in files exported before it was stored
    if stored is not None and stored != weights_digest(proto):
        raise XmkdError(f"{path}: weights do not match their stored digest (the file is corrupt)")
    parity = info.get("parity")
    if parity is not None and not _parity_passed(parity):
        raise XmkdError(f"{path}: its export failed (or lacks) the parity check against PyTorch")
    return info


def _check_spec(spec: dict[str, Any], path: str | Path) -> None:
    """The metadata's input spec is a valid InputSpec of sane size (as for checkpoints)."""
    from xmkd.checkpoint import MAX_PERSONS, MAX_WINDOW
    from xmkd.preprocess import InputSpec

    try:
        parsed = InputSpec.from_dict(spec)
    except (TypeError, ValueError) as exc:
        raise XmkdError(f"{path}: its input spec is not valid ({str(exc)[:160]})") from None
    for name, bound in (("window", MAX_WINDOW), ("num_persons", MAX_PERSONS)):
        value = getattr(parsed, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise XmkdError(
                f"{path}: its input spec {name} must be a whole number from 1 to {bound}"
            )


def _parity_passed(parity: Any) -> bool:
    try:
        diffs = [float(parity["random_max_abs_diff"])]
        if parity.get("real_max_abs_diff") is not None:
            diffs.append(float(parity["real_max_abs_diff"]))
        ok = all(math.isfinite(d) and d <= float(parity["tolerance"]) for d in diffs)
        return ok and not parity.get("nonfinite_outputs")
    except (AttributeError, KeyError, TypeError, ValueError):
        return False


def cached_export_ok(path: str | Path, key: str) -> bool:
    """Whether a cached export at ``path`` may be reused for the source identified by ``key``:
    readable, made from that source (its ``cache_key``), its parity check recorded as passed and
    no NaN/inf weights. Anything else is exported again."""
    try:
        info = verified_metadata(path)
    except XmkdError:
        return False
    return info.get("cache_key") == key and info.get("parity") is not None


def write_float16(source: str | Path, target: str | Path) -> Path:
    """Write the FP16 version of an exported graph (FP16 weights and compute, FP32 I/O)."""
    from engines.onnx_fp16 import convert_to_float16

    onnx = _onnx()
    proto = convert_to_float16(load_onnx(source))
    info = read_metadata(source)
    _set_metadata(proto, {**info, "precision": "fp16"})
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------------------------
# Parity


def random_windows(
    window: int,
    dynamic_batch: bool,
    dynamic_window: bool,
    persons: int = 2,
    seed: int = 0,
) -> list[np.ndarray]:
    """Random skeleton-like windows (metre-scale values) at the export shape and, for dynamic
    axes, at other batch sizes and windows."""
    rng = np.random.default_rng(seed)
    shapes = [(2, window)]
    if dynamic_batch:
        shapes.append((1, window))
        shapes.append((5, window))
    if dynamic_window:
        shapes.append((1, max(4, window // 2 + 3)))
        shapes.append((3, window * 2 + 1))
    return [
        (rng.standard_normal((n, 3, t, 25, persons)) * 0.5).astype(np.float32) for n, t in shapes
    ]


def real_windows(skeleton_files: Sequence[str | Path], spec: Any) -> np.ndarray:
    """Windows (N, 3, window, 25, M) of NTU ``.skeleton`` files through the shared pipeline:
    body selection (:func:`xmkd.ntu.to_model_array`) then :func:`xmkd.preprocess.prepare_window`.
    """
    from xmkd.ntu import read_skeleton, to_model_array
    from xmkd.preprocess import prepare_window

    windows = []
    for file in skeleton_files:
        seq = read_skeleton(file)
        clip, valid = to_model_array(seq, max_bodies=spec.num_persons)
        windows.append(prepare_window(clip, valid, spec, train=False))
    if not windows:
        raise XmkdError("no skeleton files given for the parity check on real data")
    return np.stack(windows)


def skeleton_files(paths: Sequence[str | Path]) -> list[Path]:
    """``.skeleton`` files named directly or found (not recursively) in the given folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*.skeleton")))
        elif p.is_file():
            files.append(p)
        else:
            raise XmkdError(f"{p}: no such file or folder (expected .skeleton files)")
    if not files:
        raise XmkdError(f"no .skeleton files in {', '.join(map(str, paths))}")
    return files


def onnx_session(path: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> Any:
    ort = require("onnxruntime", "onnx", "Running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime's errors (Fail, InvalidGraph, ...) share no base class
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise XmkdError(f"{path}: ONNX Runtime cannot load this model ({first})") from None


def _max_diff(
    ensemble: Ensemble, session: Any, batches: Sequence[np.ndarray], report: ParityReport
) -> float:
    """Largest |ONNX - PyTorch| over the batches; counts NaN/inf outputs into ``report`` (they
    would make every comparison false, i.e. pass) and records the reference outputs' spread."""
    worst = 0.0
    for x in batches:
        with torch.no_grad():
            ref = ensemble(torch.from_numpy(x)).numpy()
        out = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if out.shape != ref.shape:
            raise XmkdError(f"ONNX output shape {out.shape} differs from PyTorch's {ref.shape}")
        finite = np.isfinite(out) & np.isfinite(ref)
        report.nonfinite_outputs += int(finite.size - np.count_nonzero(finite))
        if not finite.all():
            worst = math.inf
            continue
        worst = max(worst, float(np.abs(out.astype(np.float64) - ref).max()))
        if ref.size:
            spread = float((ref.max(axis=-1) - ref.min(axis=-1)).max())
            report.output_spread = max(report.output_spread or 0.0, spread)
    return worst


def check_parity(
    model: nn.Module | Sequence[nn.Module],
    onnx_path: str | Path,
    random_inputs: Sequence[np.ndarray],
    real_inputs: np.ndarray | None = None,
    precision: str = "fp32",
    rule: EnsembleRule = "mean",
    tolerance: float | None = None,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Compare ONNX Runtime (CPU) with the PyTorch ensemble; raise XmkdError above tolerance."""
    ensemble = _on_cpu(as_ensemble(model, rule))
    session = onnx_session(onnx_path)
    tolerance = TOLERANCE[precision] if tolerance is None else tolerance
    report = ParityReport(
        precision=precision,
        tolerance=tolerance,
        random_max_abs_diff=0.0,
        random_shapes=[list(x.shape) for x in random_inputs],
    )
    report.random_max_abs_diff = _max_diff(ensemble, session, random_inputs, report)
    if real_inputs is not None and len(real_inputs):
        # Batches of up to 8 so long windows stay cheap on CPU.
        chunks = [real_inputs[i : i + 8] for i in range(0, len(real_inputs), 8)]
        report.real_max_abs_diff = _max_diff(ensemble, session, chunks, report)
        report.real_windows = len(real_inputs)
    if raise_on_failure and not report.passed:
        raise XmkdError(
            f"{onnx_path}: the exported model disagrees with PyTorch: {report.summary()}"
        )
    return report


def export_checked(
    model: nn.Module | Sequence[nn.Module],
    path: str | Path,
    window: int,
    *,
    rule: EnsembleRule = "mean",
    persons: int = 2,
    fp16: bool = False,
    real_inputs: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> ExportResult:
    """:func:`export_onnx` then :func:`check_parity` (FP32 always; also the FP16 file if asked).

    With ``fp16`` the FP32 graph is checked, then converted and the FP16 graph, written to
    ``path``, is checked against the FP32 PyTorch model at the FP16 tolerance.
    """
    path = Path(path)
    ensemble = as_ensemble(model, rule)
    # Both files are written under temporary names; only a checked one is renamed to ``path``,
    # so a failed export is never left where it (or a cache) would be picked up later.
    fp32_tmp = path.with_name(f".{path.stem}.fp32-unchecked.onnx")
    fp16_tmp = path.with_name(f".{path.stem}.fp16-unchecked.onnx")
    try:
        result = export_onnx(
            ensemble, fp32_tmp, window, rule=rule, persons=persons, progress=progress, **kwargs
        )
        if progress:
            progress("parity check")
        inputs = random_windows(window, result.dynamic_batch, result.dynamic_window, persons)
        result.parity = check_parity(ensemble, fp32_tmp, inputs, real_inputs, "fp32", rule)
        checked = fp32_tmp
        if fp16:
            write_float16(fp32_tmp, fp16_tmp)
            result.precision = "fp16"
            result.parity = check_parity(ensemble, fp16_tmp, inputs, real_inputs, "fp16", rule)
            checked = fp16_tmp
        _set_file_metadata(checked, {"parity": asdict(result.parity)})
        os.replace(checked, path)
    finally:
        fp32_tmp.unlink(missing_ok=True)
        fp16_tmp.unlink(missing_ok=True)
    result.path = path
    return result


def _set_file_metadata(path: Path, extra: dict[str, Any]) -> None:
    onnx = _onnx()
    proto = load_onnx(path)
    info = read_metadata(path)
    _set_metadata(proto, {**info, **extra})
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def checkpoint_metadata(meta: Any) -> dict[str, Any]:
    """What an exported file records about its checkpoint (see xmkd.checkpoint.StudentsMeta)."""
    return {
        "checkpoint": str(meta.path),
        "archs": list(meta.archs),
        "class_names": list(meta.class_names),
        "input_spec": dict(meta.input_spec),
        # live inference cuts windows like the training clips: an .onnx must say how on its own
        # (a checkpoint from before the stream entry has none: the .onnx then gets the default
        # with its note too, rather than passing the default off as the model's own)
        **({"stream": meta.stream_info().to_dict()} if meta.stream else {}),
    }
