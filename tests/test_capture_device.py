"""Real Azure Kinect / Orbbec Femto sensors: run with ``pytest -m device`` where one is attached."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.device


@pytest.fixture()
def sensor(request):
    if "device" not in (request.config.getoption("-m") or ""):
        pytest.skip("needs a real Azure Kinect: run with -m device")
    if importlib.util.find_spec("pyk4a") is None:
        pytest.skip('pyk4a is not installed (pip install "xmkd[kinect]" after the Sensor SDK)')
    from capture.kinect import list_devices

    devices = list_devices()
    if not devices:
        pytest.skip("no Azure Kinect connected")
    return devices[0]


def test_real_device_streams_synchronized_frames(sensor):
    from capture.source import open_source

    with open_source(f"kinect:{sensor['index']}?bodies=0", max_frames=60) as src:
        frames = list(src)
    assert len(frames) == 60
    assert frames[0].color is not None and frames[0].depth is not None
    assert src.dropped_frames <= 3
    assert src.device_info()["serial"] == sensor["serial"]


def test_real_device_body_tracking(sensor):
    from capture.source import open_source

    with open_source(f"kinect:{sensor['index']}", max_frames=30) as src:
        frames = list(src)
    # someone must stand in front of the sensor for bodies; the shapes are checked regardless
    for frame in frames:
        for body in frame.bodies:
            assert body.joints.shape == (25, 3) and body.color_px.shape == (25, 2)
