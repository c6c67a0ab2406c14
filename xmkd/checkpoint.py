"""THE xmkd checkpoint format: written by `xmkd distill` / `xmkd teacher train`, read by the rest.

A checkpoint is one ``torch.save`` file holding a dict of tensors and plain Python values only
(str, int, float, bool, None, list, tuple, dict), so ``torch.load(path, weights_only=True)`` reads
it and a checkpoint can never run code on load. Its top level:

``format``   ``"xmkd-checkpoint"``
``version``  :data:`VERSION` (an integer; readers refuse newer versions)
``kind``     ``"students"`` (an ensemble of skeleton students) or ``"teacher"`` (a TSN teacher)
``config``   the training configuration as a plain dict (``dataclasses.asdict`` of xmkd.config)
``class_names``  list of class names; ``num_classes`` is its length
``input_spec``   the window preprocessing the model expects (``xmkd.preprocess.InputSpec`` as dict)
``models``   list of ``{"arch": str, "kwargs": dict, "state_dict": dict, "digest": str}``, one
             per student (one entry, arch ``"tsn"``, for a teacher); ``digest`` is
             :func:`weights_digest` of the state dict, written by :func:`save_checkpoint` and
             checked on load (checkpoints written before it existed have none and still load)
``ensemble`` how the students' probabilities are combined at inference: ``"mean"`` or ``"max"``
``extra``    free plain data (modality of a teacher, metrics, ...)
``stream``   optional (students): what live inference needs to cut windows like the training
             clips (:class:`StreamInfo`: clip duration in frames, frame rate, body selection);
             checkpoints written before it existed get :data:`LEGACY_STREAM` with a note
``train``    optional, for ``--resume`` only: optimizer and scheduler states per model, RNG states
             (torch, numpy as a tensor, python ``random``), epoch, step, best metric, history

Saving is atomic (a temporary file in the same folder, fsync, ``os.replace``): a crash or a full
disk leaves the previous checkpoint intact. Every failure is a :class:`CheckpointError` naming
the file: a missing or ill-typed field (named), weights that do not match their digest (flipped
bits), non-finite weights, an input spec or architecture sizes beyond sane bounds (checked before
anything is allocated).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
import random
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xmkd.errors import CheckpointError

FORMAT = "xmkd-checkpoint"
VERSION = 1
KINDS = ("students", "teacher")
ENSEMBLE_RULES = ("mean", "max")
#: Largest input window (frames) a checkpoint may ask for: 5 minutes at 30 fps. NTU windows are
#: 300 frames; an absurd value would make every window buffer of live inference and export huge.
MAX_WINDOW = 9000
#: Most persons per window a checkpoint may ask for (Kinect tracks at most 6 bodies).
MAX_PERSONS = 16


# ----------------------------------------------------------------------------- plain data
def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """Convert ``obj`` to the types ``torch.load(weights_only=True)`` accepts, or raise TypeError.

    Tensors are moved to the CPU, numpy arrays become tensors, numpy scalars Python numbers,
    paths strings, dataclasses dicts.
    ``where`` names the key path in the error so a bad entry is found quickly.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, torch.Tensor):
        # CPU tensors only: a checkpoint written on a GPU opens on a machine without one, also
        # with a plain torch.load that names no map_location
        return obj.detach().cpu()
    if isinstance(obj, (torch.dtype, torch.Size)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(dataclasses.asdict(obj), where)
    if isinstance(obj, collections.Counter):  # MultiStepLR milestones; allowed by weights_only
        return collections.Counter({to_plain(k, where): v for k, v in obj.items()})
    if isinstance(obj, Mapping):
        return {to_plain(k, where): to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, list):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} holds a {type(obj).__name__}, which a checkpoint cannot store")


# ----------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """The state of every random generator training uses, as plain data."""
    # the legacy global generator is what third-party augmentation code draws from
    np_state = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


# ----------------------------------------------------------------------------- save / load
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file and ``os.replace``.

    The previous file at ``path`` is replaced only once the new one is completely written and
    flushed, so it survives a crash or a full disk; failures raise CheckpointError naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot create its folder ({exc.strerror or exc})") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError)):
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CheckpointError(
                f"{path}: could not be written ({reason}); the previous file, if any, is unchanged"
            ) from exc
        raise
    return path


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (a full checkpoint dict) to ``path`` atomically; return the path.

    The data goes to a temporary file in the same folder which replaces ``path`` only once it is
    completely written and flushed, so the last good checkpoint survives a crash or a full disk.
    """
    path = Path(path)
    _validate(payload, path)
    try:
        plain = to_plain(dict(payload))
    except TypeError as exc:
        raise CheckpointError(f"{path}: cannot be saved: {exc}") from exc
    plain["models"] = [
        {**entry, "digest": weights_digest(entry["state_dict"])} for entry in plain["models"]
    ]
    atomic_torch_save(path, plain)
    return path


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``"sha256:<hex>"`` over a state dict in a canonical order: per key (sorted) its name,
    dtype, shape and raw bytes. Detects any changed bit of the weights (a corrupt file)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def safe_torch_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # foreign pickle protocols warn
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling, truncated zip, bad magic: all "not a safe checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            why = "it contains Python objects other than tensors and plain data, "
            why += "which are refused because loading them could run code"
        else:
            why = f"it is not a readable torch file (truncated or corrupt? {first[:160]})"
        raise CheckpointError(f"{path}: cannot be loaded safely: {why}") from exc
    return data


def load_checkpoint(
    path: str | Path, kind: str | None = None, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its format, version and kind."""
    path = Path(path)
    data = safe_torch_load(path, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: is not an xmkd checkpoint (no format '{FORMAT}')")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version!r} is newer than this xmkd reads ({VERSION})"
        )
    if kind is not None and data.get("kind") != kind:
        raise CheckpointError(
            f"{path}: is a {_short(data.get('kind'))} checkpoint, but a {kind!r} checkpoint "
            "is needed"
        )
    _validate(data, path)
    _check_weights(data, path)
    return data


def _short(value: Any) -> str:
    """``repr(value)`` cut to 60 characters (a corrupt field can be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text)} characters)"


def _type_name(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _field(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], path: Path) -> Any:
    """``data[key]``, which must exist and be of ``types``; else a CheckpointError naming it."""
    if key not in data:
        raise CheckpointError(f"{path}: the checkpoint field '{key}' is missing")
    value = data[key]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
        names = " or ".join(t.__name__ for t in _tuple(types))
        raise CheckpointError(
            f"{path}: the checkpoint field '{key}' must be {names}, not {_type_name(value)}"
        )
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _validate(data: Mapping[str, Any], path: Path) -> None:
    if data.get("format") != FORMAT or data.get("kind") not in KINDS:
        raise CheckpointError(
            f"{path}: checkpoint needs format '{FORMAT}' and kind in {KINDS}, "
            f"got {_short(data.get('format'))} / {_short(data.get('kind'))}"
        )
    models = _field(data, "models", list, path)
    if not models:
        raise CheckpointError(f"{path}: checkpoint holds no models")
    for i, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not {"arch", "kwargs", "state_dict"} <= set(entry):
            raise CheckpointError(f"{path}: model {i} lacks arch/kwargs/state_dict")
        where = f"model {i}"
        if not isinstance(entry["arch"], str):
            raise CheckpointError(
                f"{path}: {where} arch must be a str, not {_type_name(entry['arch'])}"
            )
        kwargs, state = entry["kwargs"], entry["state_dict"]
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise CheckpointError(f"{path}: {where} kwargs must be a dict of named options")
        if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise CheckpointError(f"{path}: {where} state_dict must map names to tensors")
        if "digest" in entry and not isinstance(entry["digest"], str):
            raise CheckpointError(f"{path}: {where} digest must be a str")
    names = _field(data, "class_names", list, path)
    if not names:
        raise CheckpointError(f"{path}: checkpoint has no class names")
    if not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: the checkpoint field 'class_names' must hold strings")
    if "num_classes" in data:
        count = _field(data, "num_classes", int, path)
        if count != len(names):
            raise CheckpointError(
                f"{path}: num_classes is {count} but there are {len(names)} class names"
            )
    _field(data, "input_spec", Mapping, path)
    for key in ("config", "extra"):
        if data.get(key) is not None:
            _field(data, key, Mapping, path)
    if data.get("ensemble", "mean") not in ENSEMBLE_RULES:
        raise CheckpointError(f"{path}: unknown ensemble rule {_short(data.get('ensemble'))}")


def _check_weights(data: Mapping[str, Any], path: Path) -> None:
    """Stored digests match (no flipped bit) and every floating weight is finite."""
    for i, entry in enumerate(data["models"]):
        state = entry["state_dict"]
        stored = entry.get("digest")
        if stored is not None and stored != weights_digest(state):
            raise CheckpointError(
                f"{path}: weights do not match their stored digest (the file is corrupt)"
            )
        for key, tensor in state.items():
            if tensor.is_floating_point() or tensor.is_complex():
                if not bool(torch.isfinite(tensor).all()):
                    raise CheckpointError(
                        f"{path}: model {i} ({entry['arch']}) weight '{key}' holds NaN or "
                        "infinite values (training diverged?); it cannot make predictions"
                    )


def make_checkpoint(
    kind: str,
    models: list[tuple[str, Mapping[str, Any], nn.Module | Mapping[str, torch.Tensor]]],
    class_names: list[str],
    input_spec: Mapping[str, Any] | Any,
    config: Mapping[str, Any] | Any = None,
    ensemble: str = "mean",
    extra: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    stream: StreamInfo | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a checkpoint dict; ``models`` is a list of (arch, kwargs, module or state_dict).

    A DDP-wrapped module is unwrapped so keys never carry a ``module.`` prefix.
    """
    entries = []
    for arch, kwargs, model in models:
        if isinstance(model, nn.Module):
            model = getattr(model, "module", model)  # DistributedDataParallel
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state = dict(model)
        entries.append({"arch": str(arch), "kwargs": dict(kwargs), "state_dict": state})
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": _as_dict(config),
        "class_names": [str(c) for c in class_names],
        "num_classes": len(class_names),
        "input_spec": _as_dict(input_spec),
        "models": entries,
        "ensemble": ensemble,
        "extra": dict(extra or {}),
        **({"stream": _as_dict(stream)} if stream is not None else {}),
        **({"train": dict(train)} if train is not None else {}),
    }


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    return dict(obj)


# ----------------------------------------------------------------------------- live windows
@dataclass(frozen=True)
class StreamInfo:
    """How the students' training clips were cut, so a live stream can be cut the same way.

    A live window is the last ``history`` frames of the stream; for the students to see what they
    were trained on, ``history`` must span the training clips' duration (``clip_frames`` at
    ``fps``, converted to the live source's rate), and bodies must be chosen by the same rule
    (``xmkd.ntu.to_model_array(seq, max_bodies, selection=selection)``, then the input spec keeps
    its ``num_persons`` first slots). The normalisation (centering) is the input spec's.

    Attributes:
        clip_frames: median number of valid frames of the training clips.
        fps: their frame rate (NTU RGB+D: 30; a synthetic session: its preset's).
        selection: body choice of ``to_model_array`` ("motion" or "first").
        max_bodies: bodies chosen per clip by ``to_model_array`` (the datasets' M, 2).
        origin: where these values come from (said to the user by ``xmkd live``).
    """

    clip_frames: int
    fps: float
    selection: str = "motion"
    max_bodies: int = 2
    origin: str = "the checkpoint"

    def __post_init__(self) -> None:
        if not 1 <= int(self.clip_frames) <= MAX_WINDOW:
            raise ValueError(f"clip_frames must be 1..{MAX_WINDOW}, got {self.clip_frames!r}")
        if not (math.isfinite(float(self.fps)) and 0.0 < float(self.fps) <= 1000.0):
            raise ValueError(f"fps must be in (0, 1000], got {self.fps!r}")
        if self.selection not in ("motion", "first"):
            raise ValueError(f"selection must be 'motion' or 'first', got {self.selection!r}")
        if not 1 <= int(self.max_bodies) <= MAX_PERSONS:
            raise ValueError(f"max_bodies must be 1..{MAX_PERSONS}, got {self.max_bodies!r}")
        object.__setattr__(self, "clip_frames", int(self.clip_frames))
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "max_bodies", int(self.max_bodies))

    @property
    def seconds(self) -> float:
        return self.clip_frames / self.fps

    def frames_at(self, fps: float) -> int:
        """The clip duration in frames of a stream at ``fps`` (at least 1)."""
        return max(1, int(round(self.clip_frames * float(fps) / self.fps)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str | None = None) -> StreamInfo:
        """From ``to_dict`` output (unknown keys are ignored: a newer writer may add some)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"the stream entry must be a dict, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if origin is not None:
            values["origin"] = origin
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"the stream entry is incomplete ({exc})") from exc


#: What a checkpoint without a ``stream`` entry (written before it existed) is assumed to hold:
#: NTU-like clips (about 3 s at 30 fps), bodies chosen as the datasets choose them.
LEGACY_STREAM = StreamInfo(
    clip_frames=90,
    fps=30.0,
    origin="a default (90 frames at 30 fps, NTU-like): this model records no training clip "
    "duration; retrain it, or give --history in frames of your training clips",
)


# ----------------------------------------------------------------------------- students / teacher
@dataclass
class StudentsMeta:
    """What a caller needs besides the modules to run a students checkpoint."""

    path: str
    archs: list[str]
    kwargs: list[dict[str, Any]]
    class_names: list[str]
    input_spec: dict[str, Any]
    ensemble: str = "mean"
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the checkpoint's ``stream`` entry (empty for checkpoints written before it existed)
    stream: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def spec(self) -> Any:
        """The input spec as ``xmkd.preprocess.InputSpec``."""
        from xmkd.preprocess import InputSpec

        if hasattr(InputSpec, "from_dict"):
            return InputSpec.from_dict(self.input_spec)
        return InputSpec(**self.input_spec)

    def stream_info(self) -> StreamInfo:
        """How the training clips were cut (:data:`LEGACY_STREAM` for an older checkpoint)."""
        if not self.stream:
            return LEGACY_STREAM
        try:
            return StreamInfo.from_dict(
                self.stream, origin=f"the checkpoint {Path(self.path).name}"
            )
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: its stream entry is not usable: {exc}") from exc


@dataclass
class TeacherMeta:
    """What a caller needs besides the module to run a teacher checkpoint."""

    path: str
    arch: str
    kwargs: dict[str, Any]
    class_names: list[str]
    input_spec: dict[str, Any]
    modality: str
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _students_spec(spec: Mapping[str, Any], path: Path) -> Any:
    """The checkpoint's input spec as an InputSpec, its window and persons within sane bounds."""
    from xmkd.preprocess import InputSpec

    try:
        parsed = InputSpec.from_dict(dict(spec))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the input_spec is not valid ({exc})") from exc
    for name, bound in (("window", MAX_WINDOW), ("num_persons", MAX_PERSONS)):
        value = getattr(parsed, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise CheckpointError(
                f"{path}: the input_spec {name} must be a whole number from 1 to {bound}, "
                f"not {_short(value)}"
            )
    return parsed


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: {what} weights do not fit its architecture ({first})"
        ) from exc


def load_students(
    path: str | Path, map_location: Any = "cpu"
) -> tuple[list[nn.Module], StudentsMeta]:
    """Build the student modules of a ``students`` checkpoint, in eval mode, and their metadata."""
    from xmkd.models import build_student

    path = Path(path)
    data = load_checkpoint(path, kind="students", map_location=map_location)
    _students_spec(data["input_spec"], path)
    modules: list[nn.Module] = []
    for i, entry in enumerate(data["models"]):
        try:  # build_student checks the sizes before allocating anything
            model = build_student(entry["arch"], len(data["class_names"]), **entry["kwargs"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(
                f"{path}: student {i} ({entry['arch']!r}) cannot be built: {exc}"
            ) from exc
        _load_state(model, entry["state_dict"], path, f"student {i} ({entry['arch']})")
        modules.append(model.to(map_location if isinstance(map_location, str) else "cpu").eval())
    meta = StudentsMeta(
        path=str(path),
        archs=[e["arch"] for e in data["models"]],
        kwargs=[dict(e["kwargs"]) for e in data["models"]],
        class_names=list(data["class_names"]),
        input_spec=dict(data["input_spec"]),
        ensemble=data.get("ensemble", "mean"),
        config=dict(data.get("config") or {}),
        extra=dict(data.get("extra") or {}),
        stream=dict(data.get("stream") or {}),
    )
    meta.stream_info()  # a bad stream entry fails on load, naming the file
    return modules, meta


def load_teacher(path: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, TeacherMeta]:
    """Build the TSN teacher of a ``teacher`` checkpoint, in eval mode, and its metadata."""
    from xmkd.models import TSN, check_size

    path = Path(path)
    data = load_checkpoint(path, kind="teacher", map_location=map_location)
    entry = data["models"][0]
    try:
        check_size("tsn", len(data["class_names"]), dict(entry["kwargs"]))
        model = TSN(num_classes=len(data["class_names"]), **entry["kwargs"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{path}: the teacher cannot be built: {exc}") from exc
    _load_state(model, entry["state_dict"], path, "teacher")
    extra = dict(data.get("extra") or {})
    meta = TeacherMeta(
        path=str(path),
        arch=entry["arch"],
        kwargs=dict(entry["kwargs"]),
        class_names=list(data["class_names"]),
        input_spec=dict(data["input_spec"]),
        modality=str(extra.get("modality", entry["kwargs"].get("modality", "rgb"))),
        config=dict(data.get("config") or {}),
        extra=extra,
    )
    return model.eval(), meta
