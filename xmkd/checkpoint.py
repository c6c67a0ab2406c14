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
``models``   list of ``{"arch": str, "kwargs": dict, "state_dict": dict}``, one per student (one
             entry, arch ``"tsn"``, for a teacher)
``ensemble`` how the students' probabilities are combined at inference: ``"mean"`` or ``"max"``
``extra``    free plain data (modality of a teacher, metrics, ...)
``train``    optional, for ``--resume`` only: optimizer and scheduler states per model, RNG states
             (torch, numpy as a tensor, python ``random``), epoch, step, best metric, history

Saving is atomic (a temporary file in the same folder, fsync, ``os.replace``): a crash or a full
disk leaves the previous checkpoint intact. Every failure is a :class:`CheckpointError` naming
the file.
"""

from __future__ import annotations

import collections
import dataclasses
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
    atomic_torch_save(path, plain)
    return path


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
            f"{path}: is a {data.get('kind')!r} checkpoint, but a {kind!r} checkpoint is needed"
        )
    _validate(data, path)
    return data


def _validate(data: Mapping[str, Any], path: Path) -> None:
    if data.get("format") != FORMAT or data.get("kind") not in KINDS:
        raise CheckpointError(
            f"{path}: checkpoint needs format '{FORMAT}' and kind in {KINDS}, "
            f"got {data.get('format')!r} / {data.get('kind')!r}"
        )
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise CheckpointError(f"{path}: checkpoint holds no models")
    for i, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not {"arch", "kwargs", "state_dict"} <= set(entry):
            raise CheckpointError(f"{path}: model {i} lacks arch/kwargs/state_dict")
    if not isinstance(data.get("class_names"), list) or not data["class_names"]:
        raise CheckpointError(f"{path}: checkpoint has no class names")
    if data.get("ensemble", "mean") not in ENSEMBLE_RULES:
        raise CheckpointError(f"{path}: unknown ensemble rule {data.get('ensemble')!r}")


def make_checkpoint(
    kind: str,
    models: list[tuple[str, Mapping[str, Any], nn.Module | Mapping[str, torch.Tensor]]],
    class_names: list[str],
    input_spec: Mapping[str, Any] | Any,
    config: Mapping[str, Any] | Any = None,
    ensemble: str = "mean",
    extra: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def spec(self) -> Any:
        """The input spec as ``xmkd.preprocess.InputSpec``."""
        from xmkd.preprocess import InputSpec

        if hasattr(InputSpec, "from_dict"):
            return InputSpec.from_dict(self.input_spec)
        return InputSpec(**self.input_spec)


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
    modules: list[nn.Module] = []
    for i, entry in enumerate(data["models"]):
        try:
            model = build_student(entry["arch"], data["num_classes"], **entry["kwargs"])
        except (KeyError, TypeError, ValueError) as exc:
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
    )
    return modules, meta


def load_teacher(path: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, TeacherMeta]:
    """Build the TSN teacher of a ``teacher`` checkpoint, in eval mode, and its metadata."""
    from xmkd.models import TSN

    path = Path(path)
    data = load_checkpoint(path, kind="teacher", map_location=map_location)
    entry = data["models"][0]
    try:
        model = TSN(num_classes=data["num_classes"], **entry["kwargs"])
    except (KeyError, TypeError, ValueError) as exc:
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
