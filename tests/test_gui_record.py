"""Record tab: preview and record real frames (NTU replay of .skeleton files generated like the
real samples, the synthetic source and the real Kinect MKV) through capture's recorder; the clips
land in the session and read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui.record_tab import RecordTab, status_text  # noqa: E402
from tests.gui_helpers import wait_until  # noqa: E402


@pytest.fixture
def tab(qtbot, tmp_path):
    tab = RecordTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    tab.session_dir.setText(str(tmp_path / "session"))
    tab.flow.setChecked(False)  # the live-flow worker process is tested by capture
    yield tab
    tab.shutdown()


@pytest.fixture
def ntu_with_video(generated_ntu_samples, tmp_path):
    """The first sample with a paired ``_rgb.avi`` (small, generated) beside it."""
    import cv2
    import numpy as np

    folder = tmp_path / "ntu"
    folder.mkdir()
    skeleton = folder / generated_ntu_samples[0].name
    shutil.copy(generated_ntu_samples[0], skeleton)
    video = folder / (skeleton.name.removesuffix(".skeleton") + "_rgb.avi")
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 180))
    for i in range(82):
        writer.write(np.full((180, 320, 3), (i * 3) % 255, np.uint8))
    writer.release()
    return skeleton


def use_ntu(tab: RecordTab, path) -> None:
    tab.picker.kind.setCurrentIndex(1)
    assert tab.picker.kind_key() == "ntu"
    tab.picker.path.setText(str(path))


def record_a_take(qtbot, tab, ms: int, stop) -> None:
    """Press Record, record ``ms`` milliseconds, stop with ``stop``, and see one clip listed."""
    tab.record_button.click()
    wait_until(qtbot, lambda: tab.recorder is not None, 10, "recorder started")
    qtbot.wait(ms)
    stop.click()
    wait_until(qtbot, lambda: not tab.is_running(), 20, "recording finished")
    assert tab.clips.count() == 1, tab.message.text()


def test_status_line_text():
    text = status_text({"fps": 29.96, "dropped": 2, "disk_free": 5 * 1024**3}, 3, 12.34)
    assert text.split("   ·   ") == [
        "fps 30.0", "dropped 2", "disk free 5.0 GB", "recording  12.3 s", "clips 3",
    ]  # fmt: skip


def test_preview_shows_frames_skeletons_and_status(qtbot, tab, generated_ntu_samples):
    use_ntu(tab, generated_ntu_samples[1])  # two bodies
    assert tab.source_spec() == f"ntu:{generated_ntu_samples[1]}"
    tab.preview_button.click()
    assert not tab.preview_button.isEnabled() and tab.stop_button.isEnabled()
    wait_until(qtbot, lambda: tab.skeleton.body_count == 2, 10, "two bodies drawn")
    wait_until(qtbot, lambda: "fps" in tab.status.text(), 10, "status line")
    assert "disk free" in tab.status.text() and "clips 0" in tab.status.text()
    fps = float(tab.status.text().split()[1])
    assert 15 < fps < 45  # NTU replay is paced at 30 fps
    x, _ = tab.video._overlays[1][1].getData()  # 2D skeleton of the second body
    assert x is not None and len(x) == 25
    tab.stop_button.click()
    wait_until(qtbot, lambda: not tab.is_running(), 10, "preview stopped")
    assert tab.status.text() == "stopped" and tab.preview_button.isEnabled()
    assert not Path(tab.session_dir.text()).exists()  # a preview writes nothing


def test_record_a_take_into_the_session(qtbot, tab, ntu_with_video):
    from xmkd.ntu import SampleName, read_skeleton
    from xmkd.recordings import Session

    use_ntu(tab, ntu_with_video)
    tab.setup.setValue(3)
    tab.performer.setValue(4)
    tab.replication.setValue(5)
    tab.camera.setValue(2)
    tab.preview_button.click()  # recording takes the source over from the preview
    wait_until(qtbot, lambda: tab.skeleton.body_count == 1, 10, "preview running")
    tab.record_button.click()
    assert tab.record_button.isChecked()
    wait_until(qtbot, lambda: tab.recorder is not None, 10, "recorder started")
    wait_until(qtbot, lambda: "recording" in tab.status.text() and "fps" in tab.status.text(),
               10, "recording status")  # fmt: skip
    qtbot.wait(700)
    tab.record_button.click()  # stop the take
    wait_until(qtbot, lambda: not tab.is_running(), 20, "recording finished")
    assert tab.clips.count() == 1, tab.message.text()
    name = tab.clips.item(0).text().split(":")[0]
    sample = SampleName.parse(name)
    assert (sample.setup, sample.camera, sample.performer, sample.replication) == (3, 2, 4, 5)
    assert sample.action == 0  # unlabeled
    assert tab.replication.value() == 6  # the next take gets the next number
    session = Session.open(tab.session_dir.text())
    assert [c.name for c in session.clips] == [name]
    seq = read_skeleton(session.clips[0].skeleton)
    assert 10 <= seq.num_frames <= 82 and int(seq.body_counts.max()) == 1
    assert session.clips[0].has_video
    assert "recorded 1 clip(s)" in tab.status.text()
    tab.clips.clear()  # the list comes back from the session folder
    tab.list_session_clips()
    wait_until(qtbot, lambda: tab.clips.count() == 1, 10, "clips listed from session.json")
    assert tab.clips.item(0).text().startswith(name)


def test_real_kinect_mkv_preview(qtbot, tab, kinect_dir):
    mkv = next(kinect_dir.glob("*.mkv"))
    tab.picker.kind.setCurrentIndex(2)
    assert tab.picker.kind_key() == "mkv"
    tab.picker.path.setText(str(mkv))
    tab.preview_button.click()
    wait_until(qtbot, lambda: tab.video.frames_shown >= 1, 20, "the MKV's colour frame")
    wait_until(qtbot, lambda: not tab.is_running(), 20, "end of the one-capture recording")
    # 1280x720 colour, reduced to about the view's width (exactly: the test below)
    assert 320 <= tab.video.image.image.shape[1] <= 960
    # skeletons need the Body Tracking SDK; without it the window says so
    assert tab.skeleton.body_count > 0 or "without skeletons" in tab.message.text()


def test_bad_source_is_one_sentence(qtbot, tab, tmp_path):
    use_ntu(tab, tmp_path / "missing.skeleton")
    tab.preview_button.click()
    wait_until(qtbot, lambda: not tab.is_running(), 10, "preview ended")
    assert "missing.skeleton" in tab.message.text()
    assert "Traceback" not in tab.message.text()


def test_synthetic_source_preview_and_recording(qtbot, tab):
    from xmkd.recordings import Session

    tab.picker.kind.setCurrentIndex(0)
    tab.mode.setCurrentIndex(0)  # takes
    tab.preview_button.click()
    wait_until(qtbot, lambda: tab.video.frames_shown > 3, 20, "synthetic colour frames")
    assert tab.skeleton.body_count >= 1
    record_a_take(qtbot, tab, 800, stop=tab.stop_button)
    clip = Session.open(tab.session_dir.text()).clips[0]
    assert clip.has_video


def test_preview_is_made_at_the_size_shown_and_the_recording_at_full_size(qtbot, tab):
    from xmkd.recordings import Session, probe_video

    tab.picker.kind.setCurrentIndex(0)  # synthetic, rendered at 1280x720
    tab.color_res.setCurrentText(next(t for t in tab_resolutions() if "720" in t))
    tab.mode.setCurrentIndex(0)  # takes
    tab.resize(1000, 700)
    tab.preview_button.click()
    wait_until(qtbot, lambda: tab.video.frames_shown > 3, 20, "synthetic colour frames")
    shown = tab.video.display_width((1280, 720))
    assert 320 < shown < 960  # a view narrower than the former fixed 960 px preview
    wait_until(qtbot, lambda: tab.video.image.image.shape[1] == shown, 10, "display-size frames")
    tab.resize(700, 600)  # a narrower window: the next previews follow
    narrower = lambda: tab.preview_width((1280, 720))  # noqa: E731
    wait_until(qtbot, lambda: narrower() < shown, 10, "layout after the resize")
    wait_until(qtbot, lambda: tab.video.image.image.shape[1] == narrower(), 10, "smaller frames")
    record_a_take(qtbot, tab, 800, stop=tab.stop_button)
    clip = Session.open(tab.session_dir.text()).clips[0]
    info = probe_video(clip.video)  # the recorder writes the source's full-size frames
    assert (info.width, info.height) == (1280, 720)


def tab_resolutions() -> list[str]:
    from gui.record_tab import COLOR_RESOLUTIONS

    return list(COLOR_RESOLUTIONS)


def test_recording_folder_is_left_alone_when_the_source_fails(qtbot, tab, tmp_path):
    use_ntu(tab, tmp_path / "missing")
    tab.record_button.click()
    wait_until(qtbot, lambda: not tab.is_running() and tab.message.text(), 10, "record failed")
    assert not tab.record_button.isChecked()
    shutil.rmtree(tab.session_dir.text(), ignore_errors=True)


def test_record_a_take_of_a_skeleton_only_source(qtbot, tab, generated_ntu_samples, tmp_path):
    """NTU replay without a paired video: the take is a skeleton-only clip, finalized."""
    from xmkd.ntu import read_skeleton
    from xmkd.recordings import Session

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(generated_ntu_samples[1], alone / generated_ntu_samples[1].name)
    use_ntu(tab, alone / generated_ntu_samples[1].name)
    record_a_take(qtbot, tab, 700, stop=tab.record_button)
    session = Session.open(tab.session_dir.text())
    assert len(session.clips) == 1 and not session.clips[0].has_video
    seq = read_skeleton(session.clips[0].skeleton)
    assert seq.num_frames >= 10 and int(seq.body_counts.max()) == 2


class LateRateSource:
    """Stands for an MKV: its frame rate (15 fps) is known only once it is opened."""

    @staticmethod
    def make(frames: int = 30):
        import time

        import numpy as np

        from capture.source import Frame, Source

        class _Late(Source):
            kind = "late"
            description = "a file whose rate is read when opened"

            def _open(self) -> None:
                self.fps = 15.0

            def _frames(self):
                for i in range(frames):
                    image = np.full((48, 64, 3), 8 * i % 255, np.uint8)
                    yield Frame(i, image, None, [], int(i * 1e6 / 15), time.perf_counter_ns())

        return _Late()


def test_the_record_tap_reads_the_frame_rate_once_the_source_is_open(tmp_path):
    """The Record tab's tap copied ``fps`` before the source was opened: a 15 fps MKV gave a
    30 fps clip with 29 "dropped" frames."""
    from capture.recorder import RecordConfig, Recorder
    from gui.record_tab import tapped_source
    from gui.workers import LatestSlot
    from xmkd.recordings import Session

    tap = tapped_source(LateRateSource.make(), LatestSlot(), lambda: None, lambda stats: None)
    config = RecordConfig(clip_seconds=10.0, flow=False, min_free_mb=1)
    recorder = Recorder([tap], tmp_path / "s", config, log=lambda m: None)
    recorder.start()
    stats = recorder.wait()
    clip = Session.open(tmp_path / "s").clips[0]
    assert clip.frames == 30 and clip.fps == 15.0
    assert clip.meta["dropped_frames"] == 0 and stats["dropped_frames"] == {1: 0}
    assert Session.open(tmp_path / "s").fps == 15.0


def test_record_the_real_mkv_at_its_own_frame_rate(qtbot, tab, kinect_dir):
    from capture.source import open_source
    from xmkd.recordings import Session

    mkv = kinect_dir / "azure-kinect-720p-nfov-1capture.mkv"
    with open_source(f"mkv:{mkv}?bodies=0") as probe:
        rate = probe.fps  # what the file says (5 fps for this one)
    assert rate != 30.0  # else this would not tell the bug apart
    tab.picker.kind.setCurrentIndex(2)
    tab.picker.path.setText(str(mkv))
    tab.record_button.click()
    wait_until(qtbot, lambda: not tab.is_running(), 30, "the one-capture recording ended")
    session = Session.open(tab.session_dir.text())
    assert [c.fps for c in session.clips] == [rate], tab.message.text()
    assert session.fps == rate
