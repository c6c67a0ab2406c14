"""Record tab, the form: which sensor settings a source kind takes, and that an Orbbec device
or a webcam records at the colour size and rate picked (fake SDK / fake OpenCV camera)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from capture.camera import ESTIMATORS  # noqa: E402
from gui import source_picker  # noqa: E402
from gui.record_tab import RecordTab  # noqa: E402
from gui.source_picker import KINDS  # noqa: E402
from tests.fakes.camera import FakeEstimator, fake_webcam  # noqa: E402
from tests.fakes.orbbec import FakeOrbbecDevice, install_fake_pyorbbecsdk  # noqa: E402
from tests.gui_helpers import wait_until  # noqa: E402


@pytest.fixture
def tab(qtbot, tmp_path, monkeypatch):
    # device lists and estimator names from fakes: no SDK is touched while switching kinds
    monkeypatch.setattr(source_picker, "enumerate_kinect_devices", lambda: ["0: 000123"])
    monkeypatch.setattr(source_picker, "enumerate_orbbec_devices", lambda: ["0: CL8 (Femto)"])
    monkeypatch.setitem(ESTIMATORS, "fake", lambda static: FakeEstimator())
    tab = RecordTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    tab.session_dir.setText(str(tmp_path / "session"))
    tab.flow.setChecked(False)
    yield tab
    tab.shutdown()


def _choose(tab: RecordTab, key: str) -> None:
    tab.picker.kind.setCurrentText(next(text for text, k in KINDS.items() if k == key))


def test_sensor_settings_are_editable_only_for_the_sources_that_take_them(tab):
    """Depth mode only for a Kinect device; colour resolution and fps for a Kinect, an Orbbec
    device, a webcam and the synthetic source (its render size and rate); none for files,
    which play as they were recorded (they all stayed editable, silently ignored)."""
    expected = {
        "kinect": (True, True, True),
        "synthetic": (True, False, True),
        "orbbec": (True, False, True),
        "webcam": (True, False, True),
        "mkv": (False, False, False),
        "ntu": (False, False, False),
        "video": (False, False, False),
    }
    for key in ("synthetic", "mkv", "ntu", "kinect", "orbbec", "video", "webcam", "synthetic"):
        _choose(tab, key)
        state = (tab.color_res.isEnabled(), tab.depth_mode.isEnabled(), tab.fps.isEnabled())
        assert state == expected[key], key
        options = tab.source_options()
        assert ("depth" in options) == expected[key][1]  # the form shows what the spec uses
        assert ("fps" in options) == expected[key][2]
    for key in ("ntu", "video"):
        _choose(tab, key)
        assert "the file's own" in tab.fps.toolTip()


def _record_until_stopped(qtbot, tab: RecordTab, clips: int | None = None) -> None:
    """Press Record; stop after ``clips`` clips (None: when the source ends by itself)."""
    tab.record_button.click()
    assert tab.recorder is not None, tab.message.text()
    if clips is not None:
        wait_until(qtbot, lambda: tab.clips.count() >= clips, 20, f"{clips} clip(s) recorded")
        tab.stop()
    wait_until(qtbot, lambda: not tab.is_running(), 20, "recording finished")


def test_an_orbbec_device_records_the_colour_size_and_rate_picked(qtbot, tab, monkeypatch):
    from xmkd.recordings import Session, read_video

    device = FakeOrbbecDevice(width=1920, height=1080, fps=15, frames=16)
    install_fake_pyorbbecsdk(monkeypatch, [device])
    _choose(tab, "orbbec")
    qtbot.waitUntil(lambda: tab.picker.device.count() == 1)
    tab.picker.skeleton.setCurrentText("none (colour + depth only)")
    tab.color_res.setCurrentText("1080P")
    tab.fps.setCurrentText("15")
    assert tab.source_spec() == "orbbec:0?width=1920&height=1080&fps=15&skeleton=none"
    tab.mode.setCurrentText("continuous (fixed-length clips)")
    tab.clip_seconds.setValue(0.5)
    _record_until_stopped(qtbot, tab, clips=2)
    colour = device.config.streams[0]  # the profile the source enabled
    assert (colour.width, colour.height, colour.fps) == (1920, 1080, 15)
    clips = Session.open(tab.session_dir.text()).clips
    assert len(clips) >= 2 and all(c.frames == 8 for c in clips[:2])  # 0.5 s at 15 fps
    assert read_video(clips[0].video)[0].shape == (1080, 1920, 3)


def test_a_webcam_records_the_size_and_rate_picked_with_its_estimator(qtbot, tab, monkeypatch):
    import cv2

    from xmkd.ntu import read_skeleton
    from xmkd.recordings import Session, read_session_json, read_video

    camera = fake_webcam(frames=12, sizes=((640, 480), (1280, 720)))
    _choose(tab, "webcam")
    tab.picker.estimator.setCurrentText("fake")
    tab.picker.people.setValue(1)  # one person: no people detector needed
    tab.color_res.setCurrentText("720P")
    tab.fps.setCurrentText("15")
    assert tab.source_spec() == "webcam:0?width=1280&height=720&fps=15&estimator=fake&people=1"
    tab.mode.setCurrentText("continuous (fixed-length clips)")
    with monkeypatch.context() as mp:  # OpenCV reads the recorded video back afterwards
        mp.setattr(cv2, "VideoCapture", camera)
        _record_until_stopped(qtbot, tab)  # the fake camera ends after its 12 frames
    (cam,) = camera.made
    assert cam.asked[cv2.CAP_PROP_FPS] == 15.0
    (clip,) = Session.open(tab.session_dir.text()).clips
    assert clip.frames == 12 and read_video(clip.video)[0].shape == (720, 1280, 3)
    assert max(read_skeleton(clip.skeleton).body_counts) == 2  # what the fake estimator finds
    (info,) = read_session_json(tab.session_dir.text())["devices"]
    assert (info["width"], info["height"], info["estimator"]) == (1280, 720, "fake")
