"""Azure Kinect capture over a fake pyk4a (pyk4a's own test approach: the device layer replaced by
fakes that produce captures); real sensors are exercised in test_capture_device.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fakes.k4a import FakeDeviceSpec, FakeK4ALibs, FakePyK4A, install_fake_pyk4a, standing_body

from capture.bodytracking import BodyTracker
from capture.kinect import KinectConfig, KinectSource, list_devices
from capture.source import open_source, open_sources
from xmkd.errors import MissingExtraError, XmkdError


@pytest.fixture()
def calibration_raw(kinect_dir) -> str:
    return (kinect_dir / "azure-kinect-calibration.json").read_text()


def test_missing_pyk4a_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyk4a", None)  # import fails like a missing package
    with pytest.raises(MissingExtraError) as err:
        open_source("kinect?bodies=0").open()
    message = str(err.value)
    assert "Azure Kinect Sensor SDK" in message and "xmkd[kinect]" in message
    assert "\n" not in message


def test_enumerates_devices(monkeypatch, calibration_raw):
    install_fake_pyk4a(
        monkeypatch, [FakeDeviceSpec(serial="A1"), FakeDeviceSpec(serial="B2")], calibration_raw
    )
    assert list_devices() == [{"index": 0, "serial": "A1"}, {"index": 1, "serial": "B2"}]


def test_frames_are_mirrored_bgr_with_device_timestamps_and_drops(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=6, gaps={3: 2})], calibration_raw)
    src = open_source("kinect:0?bodies=0", camera=2)
    assert isinstance(src, KinectSource)
    frames = []
    with pytest.raises(XmkdError, match="delivered no capture"):  # the fake stops after 6
        with src:
            for frame in src:
                frames.append(frame)
    assert len(frames) == 6 and all(f.camera == 2 for f in frames)
    color = frames[0].color
    assert color.shape == (720, 1280, 3) and color.flags["C_CONTIGUOUS"]
    # the red band on the camera's left is on the right of the mirrored (NTU-like) image
    assert color[:, -10:, 2].mean() == 255 and color[:, :10, 2].mean() == 0
    assert frames[0].depth.shape == (576, 640) and frames[0].depth[0, -1] == 700
    assert np.diff([f.device_usec for f in frames]).tolist() == [33333, 33333, 99999, 33333, 33333]
    assert src.dropped_frames == 2
    assert src.device_info()["serial"] == "000123456789"
    assert src.device_info()["calibration"]["CalibrationInformation"]


def test_bodies_come_from_the_tracker_with_the_capture_handle(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=3)], calibration_raw)
    libs = FakeK4ALibs(lambda n: [(40 + n, standing_body(), np.full(32, 3))])
    real_init = BodyTracker.__init__
    monkeypatch.setattr(
        BodyTracker,
        "__init__",
        lambda self, *a, **k: real_init(self, *a, **{**k, "libraries": (libs, libs)}),
    )
    src = open_source("kinect:0")
    frames = []
    with pytest.raises(XmkdError):
        with src:
            for frame in src:
                frames.append(frame)
    assert [f.bodies[0].id for f in frames] == [40, 41, 42]
    # the k4a_capture_t handles inside pyk4a's capsules reached k4abt_tracker_enqueue_capture
    assert libs.enqueued == [0x1000, 0x1001, 0x1002]
    np.testing.assert_allclose(frames[0].bodies[0].joints[4], [-0.15, 0.4, 2.0])


def test_a_slow_tracker_is_pipelined_without_losing_or_reordering(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=8)], calibration_raw)
    libs = FakeK4ALibs(lambda n: [(100 + n, standing_body(), np.full(32, 3))], capacity=2,
                       latency=1)  # fmt: skip
    real_init = BodyTracker.__init__
    monkeypatch.setattr(
        BodyTracker,
        "__init__",
        lambda self, *a, **k: real_init(self, *a, **{**k, "libraries": (libs, libs)}),
    )
    src = open_source("kinect:0")
    frames = []
    with pytest.raises(XmkdError):
        with src:
            for frame in src:
                frames.append(frame)
    # results lag one capture behind; each frame still carries its own capture's bodies
    ids = [f.bodies[0].id for f in frames]
    assert ids == list(range(100, 100 + len(frames))) and len(frames) >= 7
    assert np.all(np.diff([f.device_usec for f in frames]) == 33333)


def test_several_devices_sync_master_last_and_own_camera_ids(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(serial=s) for s in "ABC"], calibration_raw)
    sources = open_sources("kinect:0,1,2?bodies=0", camera=1)
    modes = {s.index: (s.camera, s.config.wired_sync, s.config.subordinate_delay_usec)
             for s in sources}  # fmt: skip
    assert modes == {0: (1, "master", 0), 1: (2, "subordinate", 160), 2: (3, "subordinate", 320)}
    for s in sources:  # the recorder opens them in list order
        s.open()
    assert [mode for _, mode in FakePyK4A.started] == [2, 2, 1]  # subordinates first
    for s in sources:
        s.close()
    with pytest.raises(XmkdError, match="names 3 devices"):
        open_source("kinect:0,1,2?bodies=0")


def test_config_validation_and_unconnected_device(monkeypatch, calibration_raw):
    with pytest.raises(XmkdError, match="fps"):
        KinectConfig(fps=60)
    with pytest.raises(XmkdError, match="15 fps"):
        KinectConfig(depth_mode="WFOV_UNBINNED", fps=30)
    with pytest.raises(XmkdError, match="colour resolution"):
        KinectConfig(color_resolution="4K")
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec()], calibration_raw)
    with pytest.raises(XmkdError, match="#3 is not connected"):
        open_source("kinect:3?bodies=0").open()


# ---- body tracking options and SDK checks (issue 9, section 5) --------------------------------
MKV = "azure-kinect-720p-nfov-1capture.mkv"
BT_MODES = "gpu, cpu, cuda, tensorrt, directml"


def _fake_tracker_libs(monkeypatch, libs):
    real_init = BodyTracker.__init__
    monkeypatch.setattr(
        BodyTracker,
        "__init__",
        lambda self, *a, **k: real_init(self, *a, **{**k, "libraries": (libs, libs)}),
    )


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.count(". ") == 0 and "Traceback" not in message


def test_bt_option_chooses_the_processing_mode_of_a_device(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=2)], calibration_raw)
    libs = FakeK4ALibs(lambda n: [])
    _fake_tracker_libs(monkeypatch, libs)
    src = open_source("kinect:0?bt=CPU")
    assert src.config.tracker.processing_mode == "cpu"
    with src:
        pass
    assert libs.tracker_config[1] == 1  # K4ABT_TRACKER_PROCESSING_MODE_CPU
    for bad in ("kinect:0?bt=fast", "kinect:0,1?bt="):
        with pytest.raises(XmkdError) as err:
            open_sources(bad)
        assert f"is not one of {BT_MODES}" in str(err.value) and "bt=" in str(err.value)
        _one_sentence(str(err.value))


def test_bt_option_chooses_the_processing_mode_of_mkv_playback(monkeypatch, kinect_dir):
    libs = FakeK4ALibs(lambda n: [(7, standing_body(), np.full(32, 3))])
    _fake_tracker_libs(monkeypatch, libs)
    with open_source(f"mkv:{kinect_dir / MKV}?bt=cpu") as src:
        frames = list(src)
    assert frames[0].bodies[0].id == 7
    assert src.tracker_config.processing_mode == "cpu" and libs.tracker_config[1] == 1
    with open_source(f"mkv:{kinect_dir / MKV}") as src:  # no option: the SDK's default, GPU
        list(src)
    assert libs.tracker_config[1] == 0
    with pytest.raises(XmkdError, match=f"bt='directx' is not one of {BT_MODES}"):
        open_source(f"mkv:{kinect_dir / MKV}?bt=directx")


def test_a_tracker_that_cannot_start_names_the_real_cpu_switch(monkeypatch, calibration_raw):
    libs = FakeK4ALibs(lambda n: [])
    monkeypatch.setattr(libs, "k4abt_tracker_create", lambda *a: 1, raising=False)
    with pytest.raises(XmkdError) as err:
        BodyTracker(calibration_raw, libraries=(libs, libs))
    message = str(err.value)
    assert "?bt=cpu" in message and "kinect:0?bt=cpu" in message and "--bt-mode" not in message
    assert "\n" not in message


def test_passive_ir_with_body_tracking_is_one_sentence(monkeypatch, calibration_raw):
    valid = "NFOV_2X2BINNED, NFOV_UNBINNED, WFOV_2X2BINNED, WFOV_UNBINNED"
    with pytest.raises(XmkdError, match=f"PASSIVE_IR' does not give: choose one of {valid}"):
        KinectConfig(depth_mode="PASSIVE_IR", fps=15)
    assert KinectConfig(depth_mode="passive_ir", fps=15, bodies=False).depth_mode == "PASSIVE_IR"
    with pytest.raises(XmkdError, match="bodies=0"):
        open_source("kinect:0?depth=PASSIVE_IR&fps=15")
    libs = FakeK4ALibs(lambda n: [])
    with pytest.raises(XmkdError, match="needs depth images"):  # a KeyError before
        BodyTracker(calibration_raw, "PASSIVE_IR", libraries=(libs, libs))


class _NamedLib(FakeK4ALibs):
    """A fake library that says which file it was loaded from, as a ctypes.CDLL does."""

    def __init__(self, name: str):
        super().__init__(lambda n: [])
        self._name = name


def test_body_tracking_sdk_older_than_1_1_is_refused(monkeypatch, tmp_path, calibration_raw):
    from capture import bodytracking as bt

    real = tmp_path / "libk4abt.so.1.0.0"
    real.write_bytes(b"")
    (tmp_path / "libk4abt.so").symlink_to(real)
    cases = {
        "libk4abt.so.1.0": (1, 0),  # the soname find_library returns
        str(tmp_path / "libk4abt.so"): (1, 0),  # XMKD_K4ABT_LIB pointing at the symlink
        "/usr/lib/x86_64-linux-gnu/libk4abt.so.1.1.2": (1, 1),
        "libk4abt.so.2.0": (2, 0),
        "/opt/custom/libk4abt_build.so": None,  # cannot tell: the 1.1 layout is assumed
    }
    for name, version in cases.items():
        assert bt.sdk_version_of(_NamedLib(name)) == version, name
    assert bt.sdk_version_of(FakeK4ALibs(lambda n: [])) is None
    old = _NamedLib("libk4abt.so.1.0")
    monkeypatch.setattr(bt, "load_library", lambda env, names, what: old)
    with pytest.raises(XmkdError) as err:
        BodyTracker(calibration_raw)
    message = str(err.value)
    assert "libk4abt.so.1.0 is Body Tracking SDK 1.0" in message and ">= 1.1" in message
    assert old.tracker_config is None and "\n" not in message  # refused before the tracker
    new = _NamedLib("libk4abt.so.1.1")
    monkeypatch.setattr(bt, "load_library", lambda env, names, what: new)
    with BodyTracker(calibration_raw, config=bt.TrackerConfig(processing_mode="cpu")):
        assert new.tracker_config[1] == 1


# ---- live latency: one host clock (issue 9, section 5) ----------------------------------------
class _ConstantBackend:
    def __init__(self, spec, classes):
        from engines.backends import ModelSource

        self.source = ModelSource(class_names=classes, spec=spec)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        return np.full((len(windows), len(self.source.class_names)), 0.5, np.float32)


def test_live_latency_reads_the_clock_frames_are_stamped_with(monkeypatch, kinect_dir):
    """Frames are stamped on the Azure Kinect SDK's host clock (perf_counter: QPC on Windows);
    latency must be measured on that clock too. On Windows before Python 3.13 time.monotonic is
    another clock (GetTickCount64): simulated here by a monotonic clock an hour away."""
    import time

    from capture.source import host_clock_ns
    from engines.streaming import StreamingClassifier, StreamingConfig
    from xmkd.preprocess import default_input_spec

    real_monotonic_ns = time.monotonic_ns
    monkeypatch.setattr(time, "monotonic_ns", lambda: real_monotonic_ns() + 3600 * 10**9)
    libs = FakeK4ALibs(lambda n: [(3, standing_body(), np.full(32, 3))])
    _fake_tracker_libs(monkeypatch, libs)
    with open_source(f"mkv:{kinect_dir / MKV}") as src:
        frame = next(iter(src))
    assert abs(frame.host_nsec - host_clock_ns()) < 60 * 10**9  # stamped on the host clock
    spec = default_input_spec("stgcn", window=8, fit="resize")
    classifier = StreamingClassifier(
        _ConstantBackend(spec, ["A001", "A002"]), StreamingConfig(min_frames=1)
    )
    classifier.push(frame)
    prediction = classifier.classify_now()
    assert 0 <= prediction.latency_s < 60  # was an hour off with two clocks
    from dataclasses import replace

    classifier.push(replace(frame, host_nsec=0))  # no host stamp: the arrival is now, same clock
    assert 0 <= classifier.classify_now().latency_s < 60
