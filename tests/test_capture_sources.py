"""Capture sources without hardware: the Source interface, NTU replay, synthetic, real MKV,
calibration/projection with the real device calibration, k4abt binding over fakes."""

from __future__ import annotations

import ctypes
import threading
import time

import av
import numpy as np
import pytest
from fakes.k4a import FakeK4ALibs, standing_body

from capture.bodytracking import (
    BodyTracker,
    body_from_azure,
    k4abt_joint_t,
    k4abt_skeleton_t,
    load_library,
)
from capture.calibration import Calibration
from capture.mkv import MKVSource
from capture.source import (
    Body,
    DropCounter,
    bodies_to_sequence,
    count_dropped,
    open_source,
    sequence_to_bodies,
)
from xmkd.errors import FormatError, XmkdError
from xmkd.ntu import read_skeleton, write_skeleton

MKV = "azure-kinect-720p-nfov-1capture.mkv"


@pytest.fixture(scope="module")
def calibration_json(kinect_dir) -> str:
    return (kinect_dir / "azure-kinect-calibration.json").read_text()


# ---- the interface -------------------------------------------------------------------------
def test_drop_counter_counts_gaps_over_one_and_a_half_periods():
    period = 1e6 / 30
    stamps = [0, period, 2 * period, 5 * period, 6.4 * period, 7.4 * period]
    counter = DropCounter(30)
    lost = [counter.update(int(t), i) for i, t in enumerate(stamps)]
    assert lost == [0, 0, 0, 2, 0, 0]  # 1.4 periods of jitter is not a drop
    assert counter.dropped == 2 and counter.gaps == [(3, 2)]
    assert count_dropped([int(t) for t in stamps], 30) == 2


def test_unknown_source_and_options_are_one_sentence_errors():
    with pytest.raises(XmkdError, match="unknown source 'lidar'"):
        open_source("lidar")  # (webcam is a kind now: capture.camera)
    with pytest.raises(XmkdError, match="needs a path"):
        open_source("ntu")
    with pytest.raises(XmkdError, match="unknown option"):
        open_source("ntu:/nowhere?speed=2")


def test_bodies_round_trip_through_an_ntu_file(tmp_path, any_ntu_samples):
    seq = read_skeleton(any_ntu_samples[1])  # two bodies
    frames = sequence_to_bodies(seq)
    assert len(frames) == seq.num_frames and len(frames[0]) == 2
    assert isinstance(frames[0][0], Body) and frames[0][0].joints.shape == (25, 3)
    out = tmp_path / "x.skeleton"
    write_skeleton(out, bodies_to_sequence(frames))
    back = read_skeleton(out)
    assert np.array_equal(back.body_counts, seq.body_counts)
    assert np.array_equal(back.body_ids, seq.body_ids)
    np.testing.assert_allclose(back.joints, seq.joints, atol=1e-6)
    np.testing.assert_allclose(back.body_info, seq.body_info, atol=1e-6)


# ---- NTU replay ----------------------------------------------------------------------------
def test_ntu_replay_of_a_session_folder_plays_its_skeletons_at_its_frame_rate(tiny_session):
    from xmkd.recordings import Session

    session = Session.open(tiny_session)
    with open_source(f"ntu:{tiny_session}?realtime=0&video=0", max_frames=40) as src:
        frames = list(src)
        assert src.fps == session.fps == 20.0  # the session's rate, not NTU's 30
    assert len(frames) == 40 and frames[0].bodies
    with open_source(f"ntu:{tiny_session}?realtime=0&video=0&fps=30", max_frames=1) as src:
        list(src)
        assert src.fps == 30.0  # an explicit fps wins


def test_ntu_replay_plays_a_folder_as_a_playlist(any_ntu_samples):
    folder = any_ntu_samples[0].parent
    with open_source(f"ntu:{folder}?realtime=0", camera=3) as src:
        frames = list(src)
        assert src.dropped_frames == 0  # continuous timestamps across files
    expected = [read_skeleton(p) for p in any_ntu_samples]
    assert len(frames) == sum(s.num_frames for s in expected)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(f.camera == 3 and f.color is None for f in frames)
    first = expected[0]
    np.testing.assert_allclose(frames[0].bodies[0].joints, first.joints[0, :, :3])
    assert frames[0].bodies[0].id == int(first.body_ids[0])
    # the second file starts right after the first
    second = frames[first.num_frames]
    np.testing.assert_allclose(second.bodies[0].joints, expected[1].joints[0, :, :3])


def test_ntu_replay_pairs_the_video_in_a_sibling_folder(tmp_path, generated_ntu_samples):
    from xmkd.recordings import write_video

    skel_dir, rgb_dir = tmp_path / "skeletons", tmp_path / "rgb"
    skel_dir.mkdir()
    seq = read_skeleton(generated_ntu_samples[0])
    write_skeleton(skel_dir / generated_ntu_samples[0].name, seq)
    video = np.zeros((seq.num_frames - 2, 48, 64, 3), np.uint8)  # 2 frames shorter than skeleton
    video[:, :, :, 1] = np.arange(seq.num_frames - 2)[:, None, None] * 3
    write_video(rgb_dir / (generated_ntu_samples[0].stem + "_rgb.avi"), video, 30)
    with open_source(f"ntu:{skel_dir / generated_ntu_samples[0].name}?realtime=0") as src:
        frames = list(src)
    assert len(frames) == seq.num_frames  # the skeleton decides the length
    assert frames[0].color.shape == (48, 64, 3)
    assert abs(int(frames[10].color[..., 1].mean()) - 30) <= 3
    assert frames[-1].color is None


def test_ntu_replay_realtime_is_paced(generated_ntu_samples):
    with open_source(f"ntu:{generated_ntu_samples[0]}?fps=50", max_frames=16) as src:
        start = time.perf_counter()
        frames = list(src)
        elapsed = time.perf_counter() - start
    assert len(frames) == 16
    assert elapsed >= 15 / 50 * 0.9


def test_ntu_replay_names_a_broken_file(tmp_path):
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_text("3\r\n1\r\nnot numbers\r\n")
    with pytest.raises(FormatError, match="S001C001P001R001A001.skeleton"):
        with open_source(f"ntu:{bad}?realtime=0") as src:
            list(src)


# ---- synthetic -----------------------------------------------------------------------------
def test_synthetic_source_streams_generator_clips_scaled_to_the_output():
    with open_source("synthetic:tiny?realtime=0&clips=2&width=640&height=360") as src:
        frames = list(src)
        names = src.class_names
    assert len(frames) > 40 and len(names) == 6
    assert frames[0].color.shape == (360, 640, 3) and frames[0].color.dtype == np.uint8
    # the tiny preset's own rate (20 fps): the clips a model trained on the preset saw
    assert np.diff([f.device_usec for f in frames]).min() == pytest.approx(50000, abs=1)
    with_body = [f for f in frames if f.bodies]
    assert len(with_body) > len(frames) // 2
    body = with_body[0].bodies[0]
    assert body.joints.shape == (25, 3) and 1.5 < body.joints[0, 2] < 4.5  # metres in front
    # colour pixels follow the 2x upscale of the 320x180 render
    with open_source("synthetic:tiny?realtime=0&clips=1&width=320&height=180") as src:
        native = list(src)
    k = frames.index(with_body[0])
    np.testing.assert_allclose(body.color_px, (native[k].bodies[0].color_px + 0.5) * 2 - 0.5)
    np.testing.assert_allclose(body.joints, native[k].bodies[0].joints)


def _consume_in_a_thread(src) -> tuple[threading.Thread, list]:
    """Iterate ``src`` on a daemon thread (as the recorder's capture thread does)."""
    frames: list = []

    def run() -> None:
        for frame in src:
            frames.append(frame)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, frames


def test_a_late_synthetic_source_that_skips_whole_clips_still_stops(monkeypatch):
    # 8 frames at 10000 fps last 0.8 ms, a clip takes >= 100 ms to make: in real time every clip
    # is over before it exists, so the source skips all of it; a stop must still end the stream
    # (the recorder's `--seconds 2` waited 10 s and abandoned the source)
    import xmkd.synth

    real = xmkd.synth.make_clip

    def slow_make_clip(*args, **kwargs):
        time.sleep(0.1)
        return real(*args, **kwargs)

    monkeypatch.setattr(xmkd.synth, "make_clip", slow_make_clip)
    spec = "synthetic:tiny?fps=10000&frames=8&width=64&height=36&render_width=64&render_height=36"
    src = open_source(spec).open()
    try:
        thread, frames = _consume_in_a_thread(src)
        time.sleep(1.5)  # the prefetched clips are used up: now every clip is skipped whole
        src.stop()
        thread.join(10)
        assert not thread.is_alive(), "the source ignored stop() while skipping late clips"
    finally:
        src.close()


def test_synthetic_source_stops_and_closes_while_a_clip_is_being_made(monkeypatch):
    # a long clip (a high fps keeps the preset's duration: tiny at 10000 fps is 16000 frames)
    # takes a minute to render; neither stop() nor close() may wait for it, and the generator
    # thread must not be left rendering (at interpreter exit that aborts the process)
    import xmkd.synth
    from xmkd.synth.render import RenderCancelled

    release = threading.Event()
    asked: list[bool] = []

    def endless_make_clip(job, cfg, specs, should_stop=None):
        while not release.wait(0.01):
            if should_stop is not None and should_stop():
                asked.append(True)
                raise RenderCancelled("stopped")
        raise RuntimeError("released at teardown only")

    monkeypatch.setattr(xmkd.synth, "make_clip", endless_make_clip)
    src = open_source("synthetic:tiny?width=64&height=36&render_width=64&render_height=36")
    src.open()
    worker = src._worker
    try:
        thread, frames = _consume_in_a_thread(src)
        time.sleep(0.3)
        src.stop()
        thread.join(10)
        assert not thread.is_alive(), "stop() waited for the clip being made"
        assert frames == []
        start = time.monotonic()
        src.close()
        assert time.monotonic() - start < 4.0  # leaves within one frame; 5 s is the give-up
        assert not worker.is_alive() and asked == [True]
    finally:
        release.set()
        src.close()


def test_make_clip_stops_between_frames_when_asked():
    from xmkd.synth import SynthConfig, action_library, make_clip
    from xmkd.synth.generator import ClipJob
    from xmkd.synth.render import RenderCancelled

    cfg = SynthConfig(classes=3, frames=40, width=32, height=24, seed=0)
    specs = action_library(cfg.classes, cfg.seed)
    calls: list[int] = []

    def after_three() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(RenderCancelled, match="frame 3 of 40"):
        make_clip(ClipJob(1, 1, 1, 1), cfg, specs, should_stop=after_three)
    assert make_clip(ClipJob(1, 1, 1, 1), cfg, specs).frames_bgr.shape[0] == 40


# ---- calibration ---------------------------------------------------------------------------
def test_calibration_projects_like_k4a(calibration_json):
    cal = Calibration.from_json(calibration_json, "NFOV_UNBINNED", "720P")
    assert (cal.depth.width, cal.depth.height) == (640, 576)
    assert (cal.color.width, cal.color.height) == (1280, 720)
    # a point on the depth camera's optical axis lands on its principal point
    uv, valid = cal.depth.project(np.array([[0.0, 0.0, 2500.0]]))
    assert valid[0]
    np.testing.assert_allclose(uv[0], [cal.depth.cx, cal.depth.cy], atol=1e-9)
    # NFOV unbinned: 1024x1024 normalised intrinsics scaled, cropped by (192, 180), pixel-centred
    params = cal.raw["CalibrationInformation"]["Cameras"][0]["Intrinsics"]["ModelParameters"]
    assert cal.depth.cx == pytest.approx(params[0] * 1024 - 192 - 0.5)
    assert cal.depth.fy == pytest.approx(params[3] * 1024)
    # the colour camera sits about 32 mm from the depth camera: the same point shifts by
    # about fx * 32 / 2500 px, and the 6 degree tilt moves it vertically
    uv_c, _ = cal.color.project(np.array([[0.0, 0.0, 2500.0]]))
    shift = cal.color.cx - uv_c[0, 0]
    assert 0.9 * 611 * 32 / 2500 < shift < 1.1 * 611 * 32 / 2500 + 1
    assert uv_c[0, 1] > cal.color.cy + 50  # tilted: the depth axis points below the colour axis
    # +x (right in the image) increases u; behind the camera is invalid
    uv2, valid2 = cal.depth.project(np.array([[300.0, 0.0, 2500.0], [0.0, 0.0, -1.0]]))
    assert uv2[0, 0] > cal.depth.cx and valid2.tolist() == [True, False]


def test_calibration_pixels_are_mirrored_like_ntu(calibration_json):
    cal = Calibration.from_json(calibration_json)
    point = np.array([[200.0, -100.0, 2000.0]])
    color_uv, depth_uv = cal.to_ntu_pixels(point)
    raw_c, _ = cal.color.project(point)
    raw_d, _ = cal.depth.project(point)
    assert color_uv[0, 0] == pytest.approx(1279 - raw_c[0, 0])
    assert depth_uv[0, 0] == pytest.approx(639 - raw_d[0, 0])
    assert color_uv[0, 1] == pytest.approx(raw_c[0, 1])


def test_calibration_errors_name_the_file(tmp_path):
    bad = tmp_path / "calib.json"
    bad.write_text('{"CalibrationInformation": {}}')
    with pytest.raises(FormatError, match="calib.json"):
        Calibration.from_file(bad)


# ---- body tracking binding -----------------------------------------------------------------
def test_k4abt_struct_layout_matches_the_c_headers():
    assert ctypes.sizeof(k4abt_joint_t) == 32  # float3 + quaternion + enum
    assert ctypes.sizeof(k4abt_skeleton_t) == 32 * 32


def test_azure_body_becomes_an_ntu_body(calibration_json):
    cal = Calibration.from_json(calibration_json)
    positions = standing_body()
    confidence = np.full(32, 2)
    confidence[7] = 1  # WRIST_LEFT low -> inferred
    confidence[6] = 0  # ELBOW_LEFT none -> not tracked
    body = body_from_azure(5, positions, np.tile([1, 0, 0, 0], (32, 1)), confidence, cal)
    assert body.id == 5
    # NTU: metres, x and y negated; the left shoulder (NTU 5) at negative x as in NTU's files
    np.testing.assert_allclose(body.joints[4], [-0.15, 0.4, 2.0])
    np.testing.assert_allclose(body.joints[0], positions[0] * [-1, -1, 1] / 1000)
    assert body.tracking[6] == 1 and body.tracking[5] == 0 and body.tracking[0] == 2
    # mirrored pixels: the left shoulder (camera's right) has the smaller mirrored colorX,
    # as NTU's left shoulders do relative to the right ones
    assert body.color_px[4, 0] < body.color_px[8, 0]
    assert body.depth_px[4, 0] < body.depth_px[8, 0]


def test_body_tracker_over_fake_libraries(calibration_json):
    def script(n):
        return [(1, standing_body(), np.full(32, 3)), (2, standing_body(3000.0), np.full(32, 1))]

    libs = FakeK4ALibs(script)
    tracker = BodyTracker(calibration_json, libraries=(libs, libs))
    depth = np.arange(576 * 640, dtype=np.uint16).reshape(576, 640)
    bodies = tracker.track_images(depth, np.ones_like(depth), 123456)
    assert [b.id for b in bodies] == [1, 2]
    assert bodies[1].joints[0, 2] == pytest.approx(3.0) and (bodies[1].tracking == 1).all()
    depth_image = next(i for i in libs.images.values() if i["fmt"] == 4)
    assert np.array_equal(np.frombuffer(depth_image["buf"], np.uint16).reshape(576, 640), depth)
    assert depth_image["ts"] == 123456 and libs.released_frames == 1
    assert libs.calibration_calls[0][2:] == (2, 1)  # NFOV_UNBINNED, 720P
    assert libs.tracker_config[:3] == (0, 0, 0)  # K4ABT_TRACKER_CONFIG_DEFAULT
    tracker.close()
    assert libs.destroyed


def test_missing_body_tracking_library_is_an_error_not_an_exit(monkeypatch):
    monkeypatch.setenv("XMKD_K4ABT_LIB", "/nonexistent/libk4abt.so")
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    with pytest.raises(XmkdError, match="Body Tracking SDK"):
        load_library("XMKD_K4ABT_LIB", ["k4abt_xmkd_absent"], "the Body Tracking SDK (libk4abt)")


# ---- MKV -----------------------------------------------------------------------------------
def test_real_mkv_plays_without_the_sdk(kinect_dir, caplog):
    path = kinect_dir / MKV
    with open_source(f"mkv:{path}") as src:
        frames = list(src)
        info = src.device_info()
        note = src.skeleton_note
    assert len(frames) == 1
    frame = frames[0]
    assert frame.color.shape == (720, 1280, 3) and frame.depth.shape == (576, 640)
    assert frame.depth.dtype == np.uint16 and frame.bodies == []
    # device timestamp = packet pts + K4A_START_OFFSET_NS / 1000
    assert frame.device_usec == 463945 + 336277000 // 1000
    assert info["serial"] == "001514394512" and info["depth_mode"] == "NFOV_UNBINNED"
    assert info["calibration"]["CalibrationInformation"]["Cameras"]
    assert note and "Body Tracking SDK" in note or "Sensor SDK" in note
    # the frames are the recording's, mirrored horizontally like NTU's videos
    with av.open(str(path)) as container:
        depth_raw = next(container.decode(video=1)).to_ndarray()
    assert np.array_equal(frame.depth, depth_raw[:, ::-1])
    assert depth_raw.max() > 1000  # really 16-bit big-endian decoded, not byte-swapped noise


def test_mkv_runs_body_tracking_when_the_sdk_is_present(kinect_dir, monkeypatch):
    libs = FakeK4ALibs(lambda n: [(9, standing_body(), np.full(32, 3))])
    real_init = BodyTracker.__init__

    def with_fake_libs(self, *args, **kwargs):
        kwargs["libraries"] = (libs, libs)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(BodyTracker, "__init__", with_fake_libs)
    src = MKVSource(kinect_dir / MKV)
    with src:
        frames = list(src)
    assert len(frames[0].bodies) == 1 and frames[0].bodies[0].id == 9
    ir_image = next(i for i in libs.images.values() if i["fmt"] == 5)
    assert ir_image["w"] == 640 and ir_image["ts"] == frames[0].device_usec


def test_mkv_images_are_grouped_into_captures_like_k4a_playback():
    from capture.mkv import group_captures

    period = 33333
    stream = []
    for i in range(5):
        t = i * period
        if i != 2:  # the colour image of capture 2 was dropped
            stream.append(("COLOR", t, f"c{i}"))
        stream.append(("DEPTH", t + 160, f"d{i}"))  # depth 160 us after colour
        stream.append(("IR", t + 160, f"i{i}"))
    groups = list(group_captures(stream, 3, period))
    assert [start for start, _ in groups] == [0, period, 2 * period + 160, 3 * period, 4 * period]
    assert groups[1][1] == {"COLOR": "c1", "DEPTH": "d1", "IR": "i1"}
    assert groups[2][1] == {"DEPTH": "d2", "IR": "i2"}  # incomplete, still in order


def test_mkv_errors_are_one_sentence(tmp_path):
    with pytest.raises(XmkdError, match="no such MKV"):
        open_source(f"mkv:{tmp_path / 'none.mkv'}").open()
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a matroska file" * 10)
    with pytest.raises(FormatError, match="junk.mkv"):
        open_source(f"mkv:{junk}").open()
