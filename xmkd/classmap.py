"""Class maps: the target actions the students learn, and how a teacher's scores become theirs.

A class map is a small TOML file naming the target actions in order; per action, the classes of
a closed-set teacher that mean it and/or text prompts for an open-vocabulary teacher::

    [[action]]
    name = "drink water"
    teacher = ["drinking", "drinking beer", "drinking shots"]  # classes of a closed-set teacher
    prompts = ["a person drinking water"]                     # for open-vocabulary teachers
    aliases = ["A001"]   # optional: other names of this action in datasets (ground truth only)

Every key but ``name`` is optional; a teacher class may belong to one action only (a class the
map leaves out counts as "none of the target actions"). Shipped maps are found by their short
name (``--classes ntu60``, ``--classes ntu60_from_kinetics400``) as well as by path; see
:func:`shipped_class_maps`. ``--actions "drink water, sit down"`` builds a map from names alone
(:meth:`ClassMap.from_names`): each action's teacher class is its own name (for a closed-set
teacher that has such a class) and its prompts come from :data:`PROMPT_TEMPLATES`
("a video of a person {name}" and the bare name).

How a clip's teacher scores become target scores (:class:`LabelRule`):

* closed-set teacher: softmax over its own classes, then each target action's probability is the
  sum over its teacher classes; the mass on classes of no action is the off-vocabulary mass;
* open-vocabulary teacher: its classes are the target actions already (one score per action from
  its prompts): the softmax over the actions.

The label cache stores the log of the target probabilities (``xmkd distill`` softmaxes them, so
they act as the teacher's distribution renormalised over the target actions). Without a map
(the teacher's own classes) it stores the teacher's logits unchanged, as before.

The "no label" rule: a clip's *confidence* is its best target action's probability. A clip whose
confidence is below ``min_confidence`` gets no label: the cache lists it under ``no_label`` and
``xmkd distill`` leaves it out. With ``background`` instead, nothing is left out: a last class
"background" is added whose probability is the off-vocabulary mass (1 - the sum of the target
probabilities; 0 for an open-vocabulary teacher), raised to ``min_confidence`` for the clips below
it, so that those clips' label (the argmax) is background.

Ground truth in the target vocabulary (:func:`dataset_targets`): a clip's true target action is
the action whose name equals its dataset class name (case-insensitive), else the one listing
that class among its aliases or teacher classes; else it is unknown (-1). The label cache's
``targets``, the teacher accuracy ``xmkd label`` prints, the students' validation in ``xmkd
distill`` and ``xmkd eval`` all use it (:func:`in_target_vocabulary`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from xmkd.errors import XmkdError

#: prompts of an action given by name only (``--actions``, or a map action without prompts)
PROMPT_TEMPLATES = ("a video of a person {name}", "{name}")
#: the class added by ``--background``
BACKGROUND = "background"
#: the keys an [[action]] table may have
ACTION_KEYS = ("name", "teacher", "prompts", "aliases")
#: top-level keys of a class map file besides [[action]] (free text for people)
DOC_KEYS = ("title", "description")
#: probabilities below this are stored as this (the log of 0 would be -inf)
PROBABILITY_FLOOR = 1e-12


@dataclass(frozen=True)
class TargetAction:
    """One target action: its name, the teacher classes that mean it, its text prompts, and
    other names datasets give it (used only to find a clip's true action)."""

    name: str
    teacher: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def prompts_or_default(self) -> list[str]:
        """Its prompts, else the :data:`PROMPT_TEMPLATES` filled with its name."""
        return list(self.prompts) or [t.format(name=self.name) for t in PROMPT_TEMPLATES]


@dataclass
class ClassMap:
    """The target actions, in order (see the module docstring)."""

    actions: list[TargetAction]
    #: where it came from (a file, "--actions"), for messages
    source: str = ""

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.actions]

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_names(cls, names: Sequence[str], source: str = "--actions") -> ClassMap:
        """A map of actions given by name: each one's teacher class is its own name, its prompts
        the :data:`PROMPT_TEMPLATES` filled with it."""
        cleaned = [n.strip() for n in names if n.strip()]
        if not cleaned:
            raise XmkdError(f"{source}: name at least one action")
        actions = [
            TargetAction(n, teacher=(n,), prompts=tuple(t.format(name=n) for t in PROMPT_TEMPLATES))
            for n in cleaned
        ]
        _check_unique(actions, source)
        return cls(actions, source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> ClassMap:
        """The map of :meth:`to_dict`'s plain data (label caches and checkpoints store it)."""
        actions = [
            TargetAction(
                str(a["name"]),
                tuple(a.get("teacher") or ()),
                tuple(a.get("prompts") or ()),
                tuple(a.get("aliases") or ()),
            )
            for a in data.get("actions", [])
        ]
        return cls(actions, str(data.get("source", source)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "actions": [
                {
                    "name": a.name,
                    "teacher": list(a.teacher),
                    "prompts": list(a.prompts),
                    "aliases": list(a.aliases),
                }
                for a in self.actions
            ],
        }

    def prompts(self) -> dict[str, list[str]]:
        """Action name -> its prompts, in order (what an open-vocabulary teacher takes)."""
        return {a.name: a.prompts_or_default() for a in self.actions}

    def check_against(self, teacher_classes: Sequence[str], teacher: str = "the teacher") -> None:
        """Every teacher class the map names must be one of ``teacher_classes``, and every
        action must name at least one; otherwise one XmkdError listing them (with close
        matches), so a typo in a map is caught before hours of labeling."""
        known = set(teacher_classes)
        unknown = [(a.name, c) for a in self.actions for c in a.teacher if c not in known]
        empty = [a.name for a in self.actions if not a.teacher]
        if unknown:
            parts = []
            for action, cls_name in unknown[:8]:
                close = difflib.get_close_matches(cls_name, list(teacher_classes), n=3, cutoff=0.5)
                hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
                parts.append(f"{cls_name!r} of {action!r}{hint}")
            more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
            raise XmkdError(
                f"{self.source or 'the class map'}: {len(unknown)} teacher class name(s) are not "
                f"classes of {teacher}: {'; '.join(parts)}{more}"
            )
        if empty:
            shown = ", ".join(repr(n) for n in empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise XmkdError(
                f"{self.source or 'the class map'}: {len(empty)} action(s) name no class of "
                f"{teacher} (a closed-set teacher needs `teacher = [...]` per action): {shown}"
            )

    def matrix(self, teacher_classes: Sequence[str]) -> torch.Tensor:
        """(C_teacher, A) float64 0/1: teacher class c counts towards action a."""
        index = {c: i for i, c in enumerate(teacher_classes)}
        m = torch.zeros(len(teacher_classes), len(self.actions), dtype=torch.float64)
        for a, action in enumerate(self.actions):
            for c in action.teacher:
                if c in index:
                    m[index[c], a] = 1.0
        return m

    def apply(self, probs: torch.Tensor, teacher_classes: Sequence[str]) -> torch.Tensor:
        """Target probabilities (N, A): each action's sum of its teacher classes' ``probs``
        (N, C_teacher)."""
        m = self.matrix(teacher_classes)
        return probs.to(torch.float64) @ m


# ----------------------------------------------------------------------------- files
def shipped_class_maps() -> dict[str, Path]:
    """Short name -> file of the class maps shipped with xmkd (``xmkd/data/classmaps``)."""
    folder = resources.files("xmkd") / "data" / "classmaps"
    if not folder.is_dir():
        return {}
    return {
        Path(p.name).stem: Path(str(p))
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".toml")
    }


def resolve_class_map(text: str) -> Path:
    """The file of ``--classes TEXT``: a path, or the short name of a shipped map."""
    path = Path(text)
    if path.is_file():
        return path
    shipped = shipped_class_maps()
    key = text[: -len(".toml")] if text.endswith(".toml") else text
    if key in shipped:
        return shipped[key]
    raise XmkdError(
        f"--classes {text}: is neither a class map file nor a shipped map "
        f"({', '.join(shipped) or 'none shipped'})"
    )


def load_class_map(path: str | Path) -> ClassMap:
    """Read and check a class map file (see the module docstring); every error names the file
    and the [[action]] (1-based) and key at fault."""
    try:
        import tomllib
    except ModuleNotFoundError as exc:  # Python 3.10
        raise XmkdError(
            f"{path}: reading class maps needs Python 3.11 or newer (its tomllib module)"
        ) from exc
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise XmkdError(f"{path}: cannot read the class map ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise XmkdError(f"{path}: is not valid TOML ({exc})") from exc
    extra = sorted(set(data) - {"action", *DOC_KEYS})
    if extra:
        raise XmkdError(
            f"{path}: unknown top-level key(s) {', '.join(extra)}; a class map holds "
            "[[action]] tables (and optionally title/description)"
        )
    tables = data.get("action")
    if not isinstance(tables, list) or not tables:
        raise XmkdError(f"{path}: names no target action; add [[action]] tables with a name")
    actions = []
    for i, table in enumerate(tables, start=1):
        where = f"{path}: [[action]] {i}"
        if not isinstance(table, dict):
            raise XmkdError(f"{where}: must be a table (name = ..., teacher = [...])")
        name = table.get("name")
        if isinstance(name, str) and name.strip():
            where = f"{where} ({name.strip()!r})"
        unknown = sorted(set(table) - set(ACTION_KEYS))
        if unknown:
            raise XmkdError(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(ACTION_KEYS)}"
            )
        if not isinstance(name, str) or not name.strip():
            raise XmkdError(f'{where}: needs a non-empty name = "..."')
        lists = {key: _string_list(table.get(key, []), f"{where}: key {key!r}") for key in
                 ("teacher", "prompts", "aliases")}  # fmt: skip
        actions.append(
            TargetAction(
                name.strip(),
                tuple(lists["teacher"]),
                tuple(lists["prompts"]),
                tuple(lists["aliases"]),
            )
        )
    _check_unique(actions, str(path))
    return ClassMap(actions, str(path))


def open_class_map(text: str) -> ClassMap:
    """``--classes TEXT``: a class map file or a shipped map's short name, loaded and checked."""
    return load_class_map(resolve_class_map(text))


def ntu60_action_names() -> list[str]:
    """NTU RGB+D 60's action names in NTU's order (A001..A060), from the shipped ``ntu60`` map."""
    return open_class_map("ntu60").names


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise XmkdError(f'{where} must be a list of non-empty strings, e.g. ["drinking"]')
    items = [v.strip() for v in value]
    if len(set(items)) != len(items):
        twice = sorted({v for v in items if items.count(v) > 1})
        raise XmkdError(f"{where} lists {', '.join(repr(v) for v in twice)} twice")
    return items


def _check_unique(actions: Sequence[TargetAction], source: str) -> None:
    """Action names (case-insensitive), and the teacher classes and aliases each action claims,
    belong to one action only."""
    seen: dict[str, int] = {}
    for i, a in enumerate(actions, start=1):
        key = a.name.casefold()
        if key in seen:
            raise XmkdError(
                f"{source}: [[action]] {i}: the name {a.name!r} is already [[action]] {seen[key]}"
            )
        seen[key] = i
    if BACKGROUND in seen:
        raise XmkdError(
            f"{source}: [[action]] {seen[BACKGROUND]}: {BACKGROUND!r} is reserved for the class "
            "--background adds"
        )
    for key in ("teacher", "aliases"):
        owner: dict[str, int] = {}
        for i, a in enumerate(actions, start=1):
            for value in getattr(a, key):
                folded = value.casefold() if key == "aliases" else value
                if folded in owner and owner[folded] != i:
                    first = actions[owner[folded] - 1].name
                    raise XmkdError(
                        f"{source}: [[action]] {i} ({a.name!r}): {key} {value!r} is already "
                        f"claimed by [[action]] {owner[folded]} ({first!r}); a class can mean "
                        "one action only"
                    )
                owner[folded] = i
        if key == "aliases":
            for i, a in enumerate(actions, start=1):
                for value in a.aliases:
                    other = seen.get(value.casefold())
                    if other is not None and other != i:
                        raise XmkdError(
                            f"{source}: [[action]] {i} ({a.name!r}): alias {value!r} is the "
                            f"name of [[action]] {other}"
                        )


# ----------------------------------------------------------------------------- the rule
@dataclass
class LabelRule:
    """How one teacher's logits become what the label cache stores (module docstring).

    ``class_map`` None: the teacher's own classes. ``open_vocabulary``: the teacher's classes
    are the map's actions (it scored their prompts), so they are taken one to one.
    """

    teacher_classes: list[str]
    class_map: ClassMap | None = None
    open_vocabulary: bool = False
    min_confidence: float = 0.0
    background: bool = False
    _matrix: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence < 1.0:
            raise XmkdError(
                f"--min-confidence must be in [0, 1) (1 would leave no clip labeled), got "
                f"{self.min_confidence}"
            )
        self.teacher_classes = list(self.teacher_classes)
        if self.class_map is None:
            return
        if self.open_vocabulary:
            if self.teacher_classes != self.class_map.names:
                raise XmkdError(
                    f"the open-vocabulary teacher scores {len(self.teacher_classes)} classes, "
                    f"not the {len(self.class_map)} actions of {self.class_map.source}"
                )
            self._matrix = torch.eye(len(self.teacher_classes), dtype=torch.float64)
        else:
            self._matrix = self.class_map.matrix(self.teacher_classes)

    @property
    def action_names(self) -> list[str]:
        """The target actions (without background)."""
        return self.class_map.names if self.class_map is not None else list(self.teacher_classes)

    @property
    def target_names(self) -> list[str]:
        """The label cache's classes: the target actions, plus background with ``background``."""
        return self.action_names + ([BACKGROUND] if self.background else [])

    @property
    def stores_logits(self) -> bool:
        """The cache keeps the teacher's logits unchanged (its own classes, no background)."""
        return self.class_map is None and not self.background

    @property
    def scores(self) -> str:
        """What the cache's ``logits`` hold: "logits" (unchanged) or "log_probs"."""
        return "logits" if self.stores_logits else "log_probs"

    def facts(self) -> dict[str, Any]:
        """The rule as plain data (the label cache's ``extra``; a resumed run must match it)."""
        return {
            "teacher_classes": list(self.teacher_classes),
            "class_map": self.class_map.to_dict() if self.class_map is not None else None,
            "open_vocabulary": bool(self.open_vocabulary),
            "min_confidence": float(self.min_confidence),
            "background": bool(self.background),
            "scores": self.scores,
        }

    def target_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, A) float64 probabilities of the target actions (not renormalised)."""
        probs = torch.softmax(logits.to(torch.float64), dim=1)
        return probs if self._matrix is None else probs @ self._matrix

    def map_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(what the cache stores (N, len(target_names)) float32, confidence (N,), labeled (N,)
        bool) for a batch of teacher logits (N, C_teacher)."""
        mass = self.target_probs(logits)
        confidence = mass.max(dim=1).values
        labeled = confidence >= self.min_confidence
        if self.stores_logits:
            return logits.float(), confidence.float(), labeled
        if self.background:
            off = (1.0 - mass.sum(dim=1)).clamp(min=0.0)
            off = torch.where(labeled, off, off.clamp(min=self.min_confidence))
            mass = torch.cat([mass, off[:, None]], dim=1)
            labeled = torch.ones_like(labeled)
        stored = mass.clamp(min=PROBABILITY_FLOOR).log().float()
        return stored, confidence.float(), labeled

    def action_of_teacher_class(self, index: int) -> str | None:
        """The target action teacher class ``index`` counts towards (None: none)."""
        if self._matrix is None:
            return self.teacher_classes[index]
        hits = torch.nonzero(self._matrix[index]).flatten().tolist()
        return self.action_names[hits[0]] if hits else None


def same_rule(stored: Mapping[str, Any], rule: LabelRule, class_names: Sequence[str]) -> bool:
    """Whether a cache's ``extra`` was written with ``rule`` (a cache written before class maps
    has no rule facts: it was the teacher's own classes, no threshold, no background)."""
    facts = rule.facts()
    defaults = {
        "teacher_classes": list(class_names),
        "class_map": None,
        "open_vocabulary": False,
        "min_confidence": 0.0,
        "background": False,
        "scores": "logits",
    }
    for key, value in facts.items():
        old = stored.get(key, defaults[key])
        if key == "open_vocabulary" and rule.class_map is None:
            continue  # an own-classes teacher's kind does not change what is stored
        if key == "class_map" and old is not None and value is not None:
            old = {"actions": old.get("actions")}
            value = {"actions": value.get("actions")}
        if old != value:
            return False
    return True


# ----------------------------------------------------------------------------- ground truth
def dataset_targets(
    dataset_classes: Sequence[str] | None,
    target_names: Sequence[str],
    class_map: ClassMap | Mapping[str, Any] | None = None,
) -> np.ndarray:
    """For each dataset class, the index of its target action, or -1 (the rule in the module
    docstring): the action of the same name (case-insensitive), else the one listing the class
    among its aliases or teacher classes."""
    if isinstance(class_map, Mapping):
        class_map = ClassMap.from_dict(class_map)
    position = {n.casefold(): i for i, n in enumerate(target_names)}
    listed: dict[str, int] = {}
    if class_map is not None:
        for action in class_map.actions:
            i = position.get(action.name.casefold())
            if i is None:
                continue
            for other in (*action.aliases, *action.teacher):
                listed.setdefault(other.casefold(), i)
    out = []
    for name in dataset_classes or []:
        key = str(name).casefold()
        out.append(position.get(key, listed.get(key, -1)))
    return np.asarray(out, dtype=np.int64)


class _TargetLabels(Dataset):
    """Items ``(x, target action or -1, index)`` of a dataset of ``(x, label, index)`` items."""

    def __init__(self, base: Dataset, targets: np.ndarray):
        self.base = base
        self.targets = targets
        labels = np.asarray(getattr(base, "labels", []), dtype=np.int64)
        self.labels = np.asarray([self._target(int(v)) for v in labels], dtype=np.int64)
        self.names = list(getattr(base, "names", []))

    def _target(self, label: int) -> int:
        return int(self.targets[label]) if 0 <= label < len(self.targets) else -1

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        x, label, i, *rest = self.base[index]
        return (x, self._target(int(label)), i, *rest)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)


def in_target_vocabulary(
    dataset: Dataset,
    dataset_classes: Sequence[str] | None,
    target_names: Sequence[str],
    class_map: ClassMap | Mapping[str, Any] | None = None,
    where: str = "the students",
) -> Dataset:
    """``dataset`` with its labels in the students' vocabulary ``target_names`` (by
    :func:`dataset_targets`); unchanged when the vocabularies are the same (or the dataset's
    classes are unknown). An XmkdError when no dataset class is a target action."""
    if not dataset_classes or list(dataset_classes) == list(target_names):
        return dataset
    targets = dataset_targets(dataset_classes, target_names, class_map)
    if targets.size and (targets < 0).all():
        raise XmkdError(
            f"{where}: none of the data's classes ({', '.join(list(dataset_classes)[:3])}, ...) "
            f"is one of its classes ({', '.join(list(target_names)[:3])}, ...), by name or by "
            "its class map: there is nothing to score"
        )
    return _TargetLabels(dataset, targets)
