"""The synthetic paired-data generator: determinism, the layout it writes, splits, realism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xmkd import recordings as rec
from xmkd.errors import XmkdError
from xmkd.ntu import SampleName, read_skeleton
from xmkd.ntu.splits import protocol_split
from xmkd.synth import MAX_CLASSES, SynthConfig, action_library, generate, preset
from xmkd.synth import motion as M

SMALL = SynthConfig(
    classes=2,
    subjects=(1, 3),
    views=(1, 2),
    repetitions=1,
    frames=24,
    flow=True,
    flow_preset="ultrafast",
    seed=5,
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "session.json"
    }


def _index(root: Path) -> dict:
    info = json.loads((root / "session.json").read_text())
    info.pop("created")
    return info


def test_same_seed_gives_identical_files_for_any_worker_count(tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "a", workers=1)
    generate(SMALL, tmp_path / "b", workers=2)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 8 * (1 + 1 + 1 + 2 * 23)  # 8 clips: skeleton, video, timestamps, flow
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:3]
    assert _index(tmp_path / "a") == _index(tmp_path / "b")

    other = SynthConfig(**{**SMALL.to_dict(), "seed": 6})
    generate(other, tmp_path / "c", workers=1)
    c = _files(tmp_path / "c")
    name = "skeletons/S001C001P001R001A001.skeleton"
    assert c[name] != a[name]


def test_regenerating_replaces_only_a_synthetic_session(tmp_path: Path) -> None:
    out = tmp_path / "s"
    generate(SynthConfig(**{**SMALL.to_dict(), "classes": 1, "flow": False}), out)
    stale = rec.skeleton_path(out, "S001C009P001R001A001")
    stale.write_text("0\n")
    generate(SynthConfig(**{**SMALL.to_dict(), "classes": 1, "flow": False}), out)
    assert not stale.exists()  # no stale clip survives a regeneration
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(XmkdError, match="not empty"):
        generate(SMALL, other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_tiny_preset_generation_time(tiny_synth, record_property) -> None:
    """Reported, not asserted as a timing test: the tiny preset targets < 30 s on 2 cores."""
    record_property("tiny_generation_seconds", round(tiny_synth.seconds, 2))
    print(f"\ntiny preset: {tiny_synth.clips} clips in {tiny_synth.seconds:.1f} s")
    assert tiny_synth.clips == preset("tiny").num_clips


def test_tiny_session_files_agree(tiny_session: Path) -> None:
    session = rec.Session.open(tiny_session)  # verifies the header counts of every clip
    cfg = preset("tiny")
    assert len(session) == cfg.num_clips
    for clip in session.clips[:: max(1, len(session) // 12)]:
        seq = read_skeleton(clip.skeleton)
        video = rec.read_video(clip.video)
        device, host = rec.read_timestamps(clip.timestamps)
        assert seq.num_frames == video.shape[0] == len(device) == cfg.frames
        assert video.shape[1:] == (cfg.height, cfg.width, 3)
        assert rec.count_flow(clip.flow) == cfg.frames - 1
        assert np.all(np.diff(device) > 0) and np.all(np.diff(host) > 0)
        period = np.median(np.diff(device))
        assert period == pytest.approx(1e6 / cfg.fps, abs=600)


def test_tiny_session_names_classes_and_splits(tiny_session: Path, tiny_synth) -> None:
    session = rec.Session.open(tiny_session, verify=False)
    cfg = preset("tiny")
    names = [SampleName.parse(c.name) for c in session.clips]
    assert {n.setup for n in names} == {1}
    assert {n.camera for n in names} == set(cfg.views)
    assert {n.action for n in names} == set(range(1, cfg.classes + 1))
    assert session.class_names == [s.name for s in action_library(cfg.classes)]
    # every protocol split is present, each with the subjects the protocol assigns
    splits = {}
    for c in session.clips:
        splits.setdefault(protocol_split(c.name), set()).add(c.sample.performer)
    assert set(splits) == {"teacher_train", "student_train", "test"}
    assert all(len(s) == 2 for s in splits.values())
    assert tiny_synth.per_split == {
        k: len(v) * len(cfg.views) * cfg.classes for k, v in splits.items()
    }
    assert json.loads((tiny_session / "session.json").read_text())["source"] == "synthetic"


def test_default_subjects_follow_ntu_xsub() -> None:
    cfg = preset("default")
    assert cfg.num_clips == 2400
    counts = {"teacher_train": 0, "student_train": 0, "test": 0}
    for p in cfg.subjects:
        counts[protocol_split(f"S001C001P{p:03d}R001A001")] += 1
    assert counts == {"teacher_train": 10, "student_train": 10, "test": 20}


def test_skeletons_follow_ntu_conventions(tiny_session: Path) -> None:
    """Metres, Kinect v2 axes (+y up, x to the sensor's left: the subject's left shoulder has the
    smaller x when facing the camera), pixels of the paired video mirrored like NTU's."""
    session = rec.Session.open(tiny_session, verify=False)
    front = [c for c in session.clips if c.sample.camera == 1]
    lefter, total = 0, 0
    for clip in front:
        seq = read_skeleton(clip.skeleton)
        j = seq.joints[seq.body_info[:, 8] == 2]
        assert 2.0 < np.median(j[:, 0, 2]) < 4.5  # spine base 2-4.5 m away
        assert np.all(j[:, 3, 1] > j[:, 0, 1])  # head above spine base
        lefter += int(np.sum(j[:, 4, 0] < j[:, 8, 0]))
        total += len(j)
        # colour pixels: the video's pinhole, u growing with x (mirrored)
        xyz, uv = j[..., :3].reshape(-1, 3), j[..., 5:7].reshape(-1, 2)
        f = 1.25 * 64
        assert np.allclose(uv[:, 0], 31.5 + f * xyz[:, 0] / xyz[:, 2], atol=1e-3)
        assert np.allclose(uv[:, 1], 31.5 - f * xyz[:, 1] / xyz[:, 2], atol=1e-3)
    assert lefter / total > 0.95


def test_sensor_errors_are_present(tiny_session: Path) -> None:
    """Inferred joints, frames without a body (lost tracking) and occasional extra bodies."""
    states, empty_frames, multi = [], 0, 0
    for path in sorted((tiny_session / "skeletons").glob("*.skeleton")):
        seq = read_skeleton(path)
        states.append(seq.joints[..., 11].ravel())
        empty_frames += int((seq.body_counts == 0).sum())
        multi += int((seq.body_counts > 1).any())
    states = np.concatenate(states)
    assert set(np.unique(states)) <= {0.0, 1.0, 2.0}
    assert 0.005 < np.mean(states == 1) < 0.3
    assert empty_frames > 0
    assert multi > 0


def test_the_video_shows_the_body_where_the_joints_project(tiny_session: Path) -> None:
    session = rec.Session.open(tiny_session, verify=False)
    clip = session.clips[0]
    seq = read_skeleton(clip.skeleton)
    video = rec.read_video(clip.video).astype(np.float32)
    static = np.median(video, axis=0)  # background estimate
    moving = np.abs(video - static).sum(-1)
    # where the hands go (varying positions) the frames differ from the background more than
    # in the image corners far from the body
    t = int(np.argmax(seq.body_counts > 0))
    u, v = np.clip(np.rint(seq.joints[t, 11, 5:7]).astype(int), 0, 63)
    assert video.shape[0] == seq.num_frames and moving.mean() > 0
    assert 0 <= u < 64 and 0 <= v < 64


def test_object_classes_share_the_arm_motion() -> None:
    """Drinking, phoning and eating move the arm alike (the held object differs): their mean
    wrist paths are much closer to each other than to waving's."""
    specs = action_library(10)
    by_name = {s.name: s for s in specs}

    def mean_wrist(name: str) -> np.ndarray:
        paths = []
        for p in range(1, 13):
            subject = M.make_subject(p, 0)
            rng = np.random.default_rng(p)
            perf = M.perform(by_name[name], subject, 48, 20.0, rng)
            w = perf.joints[:, M.WRIST[subject.dominant]] - perf.joints[:, M.HEAD]
            paths.append(w * [subject.dominant, 1, 1])  # mirror left-handers
        return np.mean(paths, axis=0)

    drink, phone, eat = (mean_wrist(n) for n in ("drink water", "make a phone call", "eat a snack"))
    wave = mean_wrist("wave hand")
    close = max(np.abs(drink - phone).mean(), np.abs(drink - eat).mean())
    assert close < 0.5 * np.abs(drink - wave).mean()
    assert {s.group for s in specs[:10]} == {"", "face", "front"}
    assert all(s.objects for s in specs if s.group)


def test_class_count_limits() -> None:
    assert len(action_library(MAX_CLASSES)) == MAX_CLASSES
    assert len({s.name for s in action_library(MAX_CLASSES)}) == MAX_CLASSES
    with pytest.raises(ValueError):
        action_library(MAX_CLASSES + 1)
    with pytest.raises(XmkdError, match="classes"):
        SynthConfig(classes=0)
    with pytest.raises(XmkdError, match="unknown synthetic preset"):
        preset("huge")


def test_cli_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from xmkd.cli import main

    out = tmp_path / "cli"
    argv = ["synth", "--preset", "tiny", "--out", str(out), "--classes", "1", "--no-flow"]
    assert main([*argv, "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "teacher_train" in printed and "clips     12" in printed
    assert "drink water" in printed and "MB" in printed
    assert not any((out / "flow").iterdir())
    assert main([*argv[:-3], "--classes", "99"]) == 2
    err = capsys.readouterr().err
    assert "classes" in err and "Traceback" not in err
