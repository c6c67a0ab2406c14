"""`xmkd export-dataset --format pyskl`: packed NTU and recordings as pyskl/mmaction2 annotations.

The file is read back the way those toolboxes read it (a dict with ``split`` and
``annotations``; each annotation's ``frame_dir``, ``label``, ``keypoint`` (M, T, V=25, C=3)
float32 and ``total_frames``), with an unpickler that only builds lists, bytearrays and numpy
arrays, and its values are compared with the ``.skeleton`` files they come from.
"""

from __future__ import annotations

import pickle
import pickletools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xmkd.cli import main
from xmkd.ntu import SampleName, read_skeleton
from xmkd.train.label import TeacherLabels

#: the globals a pyskl export may name: a list, and arrays (numpy.ndarray over a bytearray)
ALLOWED = {("builtins", "list"), ("builtins", "bytearray"), ("numpy", "ndarray")}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def read_annotations(path: Path) -> dict:
    """The export, loaded without trusting it (never plain pickle.load)."""
    with open(path, "rb") as fp:
        return _Restricted(fp).load()


def check_layout(data: dict) -> dict[str, dict]:
    """The toolboxes' documented layout; returns the annotations by frame_dir."""
    assert set(data) == {"split", "annotations"}
    assert isinstance(data["annotations"], list) and data["annotations"]
    by_name = {}
    for ann in data["annotations"]:
        assert {"frame_dir", "label", "keypoint", "total_frames"} <= set(ann)
        kp = ann["keypoint"]
        assert isinstance(kp, np.ndarray) and kp.dtype == np.float32
        assert kp.ndim == 4 and kp.shape[0] in (1, 2) and kp.shape[2:] == (25, 3)
        assert ann["total_frames"] == kp.shape[1] and type(ann["total_frames"]) is int
        assert type(ann["label"]) is int and ann["label"] >= 0
        assert kp.flags.writeable  # the toolboxes normalise keypoints in place
        assert ann["frame_dir"] not in by_name  # each sample once
        by_name[ann["frame_dir"]] = ann
    for split, names in data["split"].items():
        assert names and set(names) <= set(by_name), split
    return by_name


# --------------------------------------------------------------------------------- packed NTU
@pytest.fixture(scope="module")
def skeleton_dir(generated_ntu_samples, tmp_path_factory) -> Path:
    """The generated samples (subjects 1, 3, 8, 15: Teacher-Train and Test) plus copies under
    Student-Train subjects (2, 5), so every part of the paper's protocol has samples."""
    root = tmp_path_factory.mktemp("export-skeletons")
    for path in generated_ntu_samples:
        shutil.copy(path, root / path.name)
    first, two = generated_ntu_samples[0], generated_ntu_samples[1]
    shutil.copy(first, root / "S001C001P002R001A011.skeleton")
    shutil.copy(two, root / "S001C001P005R001A058.skeleton")
    return root


@pytest.fixture(scope="module")
def packed(skeleton_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-packed") / "packed"
    argv = ["prepare-ntu", "--skeletons", str(skeleton_dir), "--out", str(out), "--workers", "1"]
    assert main([*argv, "--no-progress"]) == 0
    return out


def export(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "ntu.pkl"
    assert main(["export-dataset", "--format", "pyskl", "--out", str(out), "--quiet", *args]) == 0
    return out


def test_packed_export_reads_back_as_the_source_skeletons(packed, skeleton_dir, tmp_path):
    data = read_annotations(export(tmp_path, "--packed", str(packed)))
    anns = check_layout(data)
    files = {p.stem: p for p in skeleton_dir.glob("*.skeleton")}
    assert set(anns) == set(files)
    split = data["split"]
    assert set(split) == {"xsub_train", "xsub_val", "xsub_teacher_train", "xsub_student_train"}
    # the toolboxes' x-sub benchmark and the paper's protocol parts, by subject
    assert sorted(split["xsub_val"]) == ["S002C001P003R001A003", "S004C002P003R001A017"]
    assert set(split["xsub_student_train"]) == {"S001C001P002R001A011", "S001C001P005R001A058"}
    assert set(split["xsub_teacher_train"]) | set(split["xsub_student_train"]) == set(
        split["xsub_train"]
    )
    assert not set(split["xsub_train"]) & set(split["xsub_val"])
    for name, ann in anns.items():
        seq = read_skeleton(files[name])
        kp = ann["keypoint"]
        assert ann["label"] == SampleName.parse(name).action - 1
        assert ann["total_frames"] == seq.num_frames  # every frame, no padding
        # one body listed per frame in the single-person files: the keypoints are its joints
        if set(seq.body_counts.tolist()) == {1}:
            assert kp.shape[0] == 1
            np.testing.assert_array_equal(kp[0], seq.joints[:, :, :3].astype(np.float32))
    # two people all along: two bodies, the second one's joints as in the file
    two = anns["S001C003P008R002A058"]["keypoint"]
    seq = read_skeleton(files["S001C003P008R002A058"])
    assert two.shape[0] == 2 and set(seq.body_counts.tolist()) == {2}
    listed = seq.joints[:, :, :3].reshape(seq.num_frames, 2, 25, 3).astype(np.float32)
    for body in range(2):
        match = [np.array_equal(two[body], listed[:, b]) for b in range(2)]
        assert any(match), body
    # frames with nobody in view stay (zeros), they are frames of the clip
    gaps = anns["S002C001P003R001A003"]["keypoint"]
    assert not gaps[:, :6].any() and gaps[:, 6].any()


def test_the_pickle_names_only_lists_and_arrays(packed, tmp_path):
    """The file loads where NumPy 1.x is installed (pyskl's usual setup): arrays are named
    numpy.ndarray, never numpy._core (NumPy 2's array pickles), and nothing else is named."""
    path = export(tmp_path, "--packed", str(packed))
    strings = [arg for op, arg, _ in pickletools.genops(path.read_bytes()) if isinstance(arg, str)]
    assert "numpy._core.multiarray" not in strings and "_reconstruct" not in strings
    read_annotations(path)  # would refuse any other global


def _cache(path: Path, names: list[str], classes: list[str], predicted: list[int]) -> Path:
    logits = torch.full((len(names), len(classes)), -3.0)
    for row, cls in enumerate(predicted):
        logits[row, cls] = 4.0
    TeacherLabels(names, logits, classes, modality="rgbdiff").save(path)
    return path


def test_teacher_labels_replace_the_ground_truth_of_the_training_samples(packed, tmp_path):
    classes = [f"A{a:03d}" for a in range(1, 61)]
    students = ["S001C001P002R001A011", "S001C001P005R001A058"]
    # the teacher is right about the first student clip and wrong about the second
    cache = _cache(tmp_path / "labels.pt", students, classes, [10, 3])
    out = export(tmp_path, "--packed", str(packed), "--labels", str(cache))
    data = read_annotations(out)
    anns = check_layout(data)
    split = data["split"]
    assert sorted(split["xsub_student_train"]) == students
    # Teacher-Train samples have no teacher label: left out of the training splits
    assert "xsub_teacher_train" not in split and sorted(split["xsub_train"]) == students
    assert anns[students[0]]["label"] == 10 and anns[students[0]]["gt_label"] == 10
    assert anns[students[1]]["label"] == 3 and anns[students[1]]["gt_label"] == 57
    for name in split["xsub_val"]:  # students are evaluated against the ground truth
        assert anns[name]["label"] == SampleName.parse(name).action - 1
    assert set(anns) == set(students) | set(split["xsub_val"])


def test_bad_inputs_are_one_sentence_and_keep_an_existing_file(packed, tmp_path, capsys):
    out = tmp_path / "ntu.pkl"
    out.write_bytes(b"an earlier export")
    base = ["export-dataset", "--format", "pyskl", "--out", str(out)]
    other = _cache(tmp_path / "other.pt", ["S001C001P002R001A011"], ["a", "b"], [1])
    classes = [f"A{a:03d}" for a in range(1, 61)]
    elsewhere = _cache(tmp_path / "elsewhere.pt", ["S009C001P002R001A011"], classes, [0])
    notes = tmp_path / "notes.pt"
    notes.write_text("not a label file")
    cases = [
        ([], "--packed DIR or --sessions"),
        (["--packed", str(packed), "--labels", str(other)], "another data set"),
        (["--packed", str(packed), "--labels", str(elsewhere)], "no teacher label for any"),
        (["--packed", str(packed), "--labels", str(notes)], str(notes)),
        (["--packed", str(tmp_path)], "not a complete packed NTU folder"),
    ]
    for extra, says in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and "Traceback" not in err[0], (extra, err)
        assert out.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    capsys.readouterr()
    assert main([*base, "--packed", str(packed), "--benchmark", "xview60"]) == 2
    assert "--benchmark" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- recordings
def test_session_export_reads_back_as_the_clips(tiny_session, tmp_path):
    from xmkd.ntu.splits import protocol_split
    from xmkd.recordings import Session

    session = Session.open(tiny_session)
    data = read_annotations(export(tmp_path, "--sessions", str(tiny_session)))
    anns = check_layout(data)
    assert set(anns) == {c.name for c in session.clips}
    split = data["split"]
    for clip in session.clips:
        part = protocol_split(clip.name, "xsub60")
        assert clip.name in split[{"test": "xsub_val"}.get(part, f"xsub_{part}")]
        ann = anns[clip.name]
        assert ann["label"] == clip.label and ann["total_frames"] == clip.frames
    # a clip with one body in every frame: its keypoints are the file's joints
    single = [c for c in session.clips if set(read_skeleton(c.skeleton).body_counts) == {1}]
    assert single
    for clip in single[:3]:
        seq = read_skeleton(clip.skeleton)
        kp = anns[clip.name]["keypoint"]
        np.testing.assert_array_equal(kp[0], seq.joints[:, :, :3].astype(np.float32))
        assert kp.shape[0] == 1


def test_export_holds_one_sample_at_a_time(tmp_path):
    """The writer streams: the pickler's memo is cleared between samples, so exporting NTU-60
    (tens of thousands of clips) takes the memory of one clip, not of the data set."""
    import tracemalloc

    from xmkd.ntu.pyskl import ExportPlan, write_pyskl

    n, shape = 400, (3, 300, 25, 2)  # 180 KB per sample, 72 MB in all
    names = [f"S001C001P002R001A{1 + i % 60:03d}" for i in range(n)]
    names = [f"{name[:12]}R{i:03d}{name[16:]}" for i, name in enumerate(names)]

    def read(i: int):
        return np.full(shape, float(i), dtype=np.float32), 300

    plan = ExportPlan(names, np.arange(n) % 60, read, {"xsub_train": names}, set(), None, "test")
    tracemalloc.start()
    try:
        write_pyskl(plan, tmp_path / "big.pkl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12e6, f"peak {peak / 1e6:.0f} MB"
    anns = check_layout(read_annotations(tmp_path / "big.pkl"))
    assert len(anns) == n
    last = anns[names[-1]]["keypoint"]
    assert last.shape == (2, 300, 25, 3) and float(last[1, 299, 24, 2]) == n - 1
