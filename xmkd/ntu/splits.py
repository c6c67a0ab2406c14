"""NTU RGB+D benchmarks (x-sub, x-view, x-set) and the paper's Teacher-Train / Student-Train split.

Benchmarks (Shahroudy et al. 2016; Liu et al. 2019):

- ``xsub60``: NTU-60 (setups S001-S017, actions A001-A060); train = the 20 subjects in
  :data:`XSUB60_TRAIN_SUBJECTS`, test = the other 20.
- ``xview60``: NTU-60; train = cameras 2 and 3, test = camera 1.
- ``xsub120``: NTU-120 (S001-S032, A001-A120); train = :data:`XSUB120_TRAIN_SUBJECTS` (53).
- ``xset120``: NTU-120; train = even setup numbers, test = odd.

The paper's protocol (Thoker & Gall, section 4) splits the x-sub training subjects into
Teacher-Train (10 subjects: the RGB/flow teacher learns here with labels) and Student-Train (10
subjects: unlabelled video/skeleton pairs for distillation); Test is the x-sub test set. The paper
does not say which 10 subjects; :class:`ProtocolSplit` makes the choice explicit. The default
rule alternates over the sorted training subjects: positions 1, 3, 5, ... (1-based) teach, 2, 4,
6, ... are students. For NTU-60 that is teacher subjects 1 4 8 13 15 17 19 27 31 35 and student
subjects 2 5 9 14 16 18 25 28 34 38, so both halves spread over the whole recording period.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from xmkd.errors import XmkdError
from xmkd.ntu.names import SampleName

__all__ = [
    "BENCHMARKS",
    "PROTOCOL_PARTS",
    "TWO_PERSON_ACTIONS",
    "XSUB60_TRAIN_SUBJECTS",
    "XSUB120_TRAIN_SUBJECTS",
    "XVIEW60_TRAIN_CAMERAS",
    "ProtocolSplit",
    "benchmark_dataset",
    "in_benchmark",
    "is_two_person",
    "missing_skeletons",
    "protocol_split",
]

XSUB60_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
XSUB120_TRAIN_SUBJECTS = XSUB60_TRAIN_SUBJECTS + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
)  # fmt: skip
XVIEW60_TRAIN_CAMERAS = (2, 3)
TWO_PERSON_ACTIONS = tuple(range(50, 61)) + tuple(range(106, 121))
BENCHMARKS = ("xsub60", "xview60", "xsub120", "xset120")
PROTOCOL_PARTS = ("teacher_train", "student_train", "test")
#: What a --split option accepts: a protocol part, or "all" (every clip of the data given).
SPLIT_CHOICES = (*PROTOCOL_PARTS, "all")
# Which release a benchmark draws from: (dataset, last setup, last action).
_DATASETS = {"ntu60": (17, 60), "ntu120": (32, 120)}
_BENCHMARK_DATASET = {
    "xsub60": "ntu60",
    "xview60": "ntu60",
    "xsub120": "ntu120",
    "xset120": "ntu120",
}
_XSUB_TRAIN = {"xsub60": XSUB60_TRAIN_SUBJECTS, "xsub120": XSUB120_TRAIN_SUBJECTS}


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise XmkdError(
            f"unknown NTU benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}"
        )


def _sample(name: str | SampleName) -> SampleName:
    return name if isinstance(name, SampleName) else SampleName.parse(str(name))


def benchmark_dataset(benchmark: str) -> str:
    """``"ntu60"`` or ``"ntu120"``: the release a benchmark uses."""
    _check_benchmark(benchmark)
    return _BENCHMARK_DATASET[benchmark]


def is_two_person(name: str | SampleName) -> bool:
    """True for the mutual actions A050-A060 and A106-A120."""
    return _sample(name).action in TWO_PERSON_ACTIONS


def in_benchmark(name: str | SampleName, benchmark: str) -> str | None:
    """``"train"`` or ``"test"`` for a sample of the benchmark; None when the sample is not part of
    it (an NTU-120-only setup or action in an NTU-60 benchmark, or action 0)."""
    _check_benchmark(benchmark)
    sample = _sample(name)
    last_setup, last_action = _DATASETS[_BENCHMARK_DATASET[benchmark]]
    if not (1 <= sample.setup <= last_setup and 1 <= sample.action <= last_action):
        return None
    if benchmark in _XSUB_TRAIN:
        train = sample.performer in _XSUB_TRAIN[benchmark]
    elif benchmark == "xview60":
        train = sample.camera in XVIEW60_TRAIN_CAMERAS
    else:  # xset120
        train = sample.setup % 2 == 0
    return "train" if train else "test"


@dataclass(frozen=True)
class ProtocolSplit:
    """Which x-sub training subjects form Teacher-Train; the others form Student-Train.

    ``teacher_subjects=None`` applies the default rule: the sorted training subjects at odd
    1-based positions teach (NTU-60: 1 4 8 13 15 17 19 27 31 35). List subjects explicitly to
    choose another split; they must be training subjects of the benchmark.
    """

    teacher_subjects: tuple[int, ...] | None = None

    def teachers(self, benchmark: str = "xsub60") -> frozenset[int]:
        """The Teacher-Train subjects of an x-sub benchmark."""
        _check_benchmark(benchmark)
        if benchmark not in _XSUB_TRAIN:
            raise XmkdError(
                f"the Teacher-Train/Student-Train protocol splits subjects, so it needs an x-sub "
                f"benchmark (xsub60 or xsub120), not {benchmark}"
            )
        train = sorted(_XSUB_TRAIN[benchmark])
        if self.teacher_subjects is None:
            return frozenset(train[0::2])
        chosen = frozenset(self.teacher_subjects)
        stray = sorted(chosen - set(train))
        if stray:
            raise XmkdError(
                f"teacher subjects {stray} are not {benchmark} training subjects "
                f"({' '.join(map(str, train))})"
            )
        if chosen == set(train):
            raise XmkdError("the teacher subjects leave no subject for Student-Train")
        return chosen

    def students(self, benchmark: str = "xsub60") -> frozenset[int]:
        """The Student-Train subjects: the benchmark's other training subjects."""
        return frozenset(_XSUB_TRAIN.get(benchmark, ())) - self.teachers(benchmark)


def protocol_split(
    name: str | SampleName, benchmark: str = "xsub60", split: ProtocolSplit = ProtocolSplit()
) -> str | None:
    """``"teacher_train"``, ``"student_train"`` or ``"test"`` for a sample under the paper's
    protocol on an x-sub benchmark; None when the sample is not part of the benchmark."""
    part = in_benchmark(name, benchmark)
    teachers = split.teachers(benchmark)
    if part is None or part == "test":
        return part
    return "teacher_train" if _sample(name).performer in teachers else "student_train"


def missing_skeletons(dataset: str) -> frozenset[str]:
    """The official list of samples with missing or incomplete skeletons for ``"ntu60"`` or
    ``"ntu120"`` (or a benchmark name); the NTU-120 list contains the NTU-60 one. Shipped with
    xmkd (``xmkd/data/missing_skeletons``)."""
    if dataset in BENCHMARKS:
        dataset = _BENCHMARK_DATASET[dataset]
    if dataset not in _DATASETS:
        raise XmkdError(f"unknown NTU dataset {dataset!r}; choose ntu60 or ntu120")
    return _load_missing(dataset)


@cache
def _load_missing(dataset: str) -> frozenset[str]:
    text = resources.files("xmkd") / "data" / "missing_skeletons" / f"{dataset}.txt"
    names = (line.strip() for line in text.read_text(encoding="ascii").splitlines())
    # The files start with two lines of explanation and a blank line.
    return frozenset(str(SampleName.parse(n)) for n in names if n.startswith("S") and len(n) == 20)
