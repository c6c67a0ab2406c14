"""NTU benchmarks, the paper's protocol split, and `xmkd prepare-ntu` packing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from xmkd.cli import main
from xmkd.errors import XmkdError
from xmkd.ntu import read_skeleton, to_model_array
from xmkd.ntu.pack import PackedNTU, PackOptions, pack_ntu
from xmkd.ntu.splits import (
    XSUB60_TRAIN_SUBJECTS,
    XSUB120_TRAIN_SUBJECTS,
    ProtocolSplit,
    in_benchmark,
    is_two_person,
    missing_skeletons,
    protocol_split,
)

# --- splits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, bench_name, part",
    [
        ("S001C001P001R001A011", "xsub60", "train"),
        ("S001C003P008R002A058", "xsub60", "train"),
        ("S002C001P003R001A003", "xsub60", "test"),
        ("S017C002P040R002A060", "xsub60", "test"),
        ("S018C001P001R001A001", "xsub60", None),  # NTU-120 setup
        ("S001C001P001R001A061", "xview60", None),  # NTU-120 action
        ("S001C001P001R001A011", "xview60", "test"),
        ("S001C002P003R001A011", "xview60", "train"),
        ("S001C003P003R001A011", "xview60", "train"),
        ("S020C001P045R001A100", "xsub120", "train"),
        ("S020C001P044R001A100", "xsub120", "test"),
        ("S001C001P001R001A011", "xsub120", "train"),
        ("S002C001P003R001A003", "xset120", "train"),
        ("S031C001P003R001A003", "xset120", "test"),
        ("S001C001P001R001A000", "xsub60", None),  # unlabelled
    ],
)
def test_benchmark_membership(name, bench_name, part):
    assert in_benchmark(name, bench_name) == part


def test_split_constants_and_two_person_classes():
    assert len(XSUB60_TRAIN_SUBJECTS) == 20 and len(set(XSUB120_TRAIN_SUBJECTS)) == 53
    assert set(XSUB60_TRAIN_SUBJECTS) < set(XSUB120_TRAIN_SUBJECTS)
    for action, two in [(49, False), (50, True), (60, True), (61, False), (105, False)]:
        assert is_two_person(f"S001C001P001R001A{action:03d}") is two
    assert is_two_person("S020C001P050R001A106") and is_two_person("S020C001P050R001A120")
    with pytest.raises(XmkdError, match="unknown NTU benchmark"):
        in_benchmark("S001C001P001R001A011", "xsub")


def test_protocol_split_default_rule():
    split = ProtocolSplit()
    teachers, students = split.teachers("xsub60"), split.students("xsub60")
    assert len(teachers) == len(students) == 10 and not teachers & students
    assert teachers | students == set(XSUB60_TRAIN_SUBJECTS)
    assert sorted(teachers) == [1, 4, 8, 13, 15, 17, 19, 27, 31, 35]
    assert protocol_split("S001C001P001R001A011") == "teacher_train"
    assert protocol_split("S001C001P002R001A011") == "student_train"
    assert protocol_split("S001C001P003R001A011") == "test"
    assert protocol_split("S018C001P002R001A011") is None
    teachers120 = split.teachers("xsub120")
    assert len(teachers120) == 27 and len(split.students("xsub120")) == 26


def test_protocol_split_configurable():
    chosen = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16)
    split = ProtocolSplit(teacher_subjects=chosen)
    assert protocol_split("S001C001P002R001A011", split=split) == "teacher_train"
    assert protocol_split("S001C001P038R001A011", split=split) == "student_train"
    with pytest.raises(XmkdError, match=r"\[3\] are not xsub60 training subjects"):
        ProtocolSplit(teacher_subjects=(1, 3)).teachers()
    with pytest.raises(XmkdError, match="leave no subject"):
        ProtocolSplit(teacher_subjects=XSUB60_TRAIN_SUBJECTS).teachers()
    with pytest.raises(XmkdError, match="x-sub benchmark"):
        protocol_split("S001C001P001R001A011", "xview60")


def test_missing_lists_ship_with_the_package():
    ntu60, ntu120 = missing_skeletons("ntu60"), missing_skeletons("ntu120")
    assert len(ntu60) == 302 and len(ntu120) == 535 and ntu60 < ntu120
    assert "S001C002P005R002A008" in ntu60 and missing_skeletons("xset120") is ntu120


def test_missing_lists_equal_the_official_ones(shared_dir):
    ntu60 = missing_skeletons("ntu60")
    official = shared_dir / "data" / "ntu-samples" / "NTU_RGBD_samples_with_missing_skeletons.txt"
    assert ntu60 == {line.strip() for line in official.read_text().splitlines()[3:] if line}


# --- packing ----------------------------------------------------------------------------------


@pytest.fixture
def skeleton_dir(any_ntu_samples, tmp_path):
    """Copies of the real samples plus: one renamed to a name on the missing list, one copy as a
    Student-Train subject, one truncated file, one NTU-120 sample and one badly named file."""
    root = tmp_path / "skeletons"
    (root / "more").mkdir(parents=True)
    for path in any_ntu_samples:
        shutil.copy(path, root / path.name)
    first = any_ntu_samples[0]  # S001C001P001R001A011
    shutil.copy(first, root / "S001C002P005R002A008.skeleton")  # on the official missing list
    shutil.copy(first, root / "more" / "S001C002P002R001A011.skeleton")  # P002: Student-Train
    shutil.copy(first, root / "S018C001P002R001A011.skeleton")  # not in NTU-60
    shutil.copy(first, root / "notes.skeleton")
    lines = first.read_bytes().split(b"\r\n")
    (root / "S003C002P009R001A005.skeleton").write_bytes(b"\r\n".join(lines[:100]))  # truncated
    return root


def test_prepare_ntu_cli(skeleton_dir, tmp_path, capsys):
    out = tmp_path / "packed"
    code = main(
        ["prepare-ntu", "--skeletons", str(skeleton_dir), "--benchmark", "xsub60", "--out",
         str(out), "--workers", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    report = capsys.readouterr().out
    assert "train 4, test 2, teacher_train 3, student_train 1" in report
    assert "skipped 1 samples on the official missing-skeleton list" in report
    assert "1 malformed files left out" in report
    assert "S003C002P009R001A005.skeleton, line 101:" in report and "truncated" in report
    assert "notes.skeleton: not named after an NTU sample" in report
    assert "ignored 1 files of samples outside the benchmark" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_missing"] == ["S001C002P005R002A008"]
    assert manifest["malformed"][0]["file"].endswith("S003C002P009R001A005.skeleton")
    assert manifest["teacher_subjects"] == [1, 4, 8, 13, 15, 17, 19, 27, 31, 35]
    assert manifest["class_names"][:2] == ["A001", "A002"] and len(manifest["class_names"]) == 60

    sources = {p.stem: p for p in skeleton_dir.rglob("*.skeleton")}
    for part in ("train", "test", "teacher_train", "student_train"):
        packed = PackedNTU(out, part)
        assert packed.data.shape == (len(packed), 3, 300, 25, 2)
        assert packed.data.dtype == np.float32 and isinstance(packed.data, np.memmap)
        assert "S001C002P005R002A008" not in packed.names
        for i, name in enumerate(packed.names):
            seq = read_skeleton(sources[name])
            expected, valid = to_model_array(seq, max_frames=300)
            assert np.array_equal(packed.data[i], expected)
            assert packed.labels[i] == int(name[-3:]) - 1
            assert packed.frames[i] == seq.num_frames == packed.valid_frames[i] == valid
            assert protocol_split(name) in (part, "teacher_train", "student_train")
    train = PackedNTU(out, "train")
    assert sorted(train.names) == sorted(
        PackedNTU(out, "teacher_train").names + PackedNTU(out, "student_train").names
    )
    assert PackedNTU(out, "student_train").names == ["S001C002P002R001A011"]
    data, label = train[0]
    assert data.shape == (3, 300, 25, 2) and label == train.labels[0]


def test_prepare_ntu_parallel_first_selection_xview(skeleton_dir, tmp_path):
    out = tmp_path / "xview"
    options = PackOptions(benchmark="xview60", selection="first")
    summary = pack_ntu(skeleton_dir, out, options, workers=2, progress=False)
    assert summary.counts == {"train": 3, "test": 3}
    assert not (out / "teacher_train_data.npy").exists()
    test = PackedNTU(out, "test")
    assert test.names == sorted(test.names) and "S001C003P008R002A058" not in test.names
    train = PackedNTU(out, "train")
    i = train.names.index("S001C003P008R002A058")  # the two-body sample, camera 3
    seq = read_skeleton(skeleton_dir / "S001C003P008R002A058.skeleton")
    assert np.array_equal(train.data[i], to_model_array(seq, 2, 300, "first")[0])
    assert len(summary.malformed) == 1 and "line 101" in summary.malformed[0][1]


def test_packed_reader_errors(skeleton_dir, tmp_path):
    with pytest.raises(XmkdError, match="no manifest.json"):
        PackedNTU(tmp_path, "train")
    out = tmp_path / "p"
    pack_ntu(skeleton_dir, out, PackOptions(benchmark="xview60"), workers=1, progress=False)
    with pytest.raises(XmkdError, match="has no part 'teacher_train'; it has train, test"):
        PackedNTU(out, "teacher_train")
    with pytest.raises(XmkdError, match="no .skeleton files"):
        pack_ntu(tmp_path / "p", tmp_path / "q", workers=1, progress=False)
    with pytest.raises(XmkdError, match="not xsub60 training subjects"):
        pack_ntu(
            skeleton_dir,
            tmp_path / "q",
            PackOptions(split=ProtocolSplit(teacher_subjects=(3,))),
            workers=1,
            progress=False,
        )
    assert main(["prepare-ntu", "--skeletons", str(tmp_path / "none"), "--out", str(out)]) == 2
