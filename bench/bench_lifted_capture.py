"""Sustained capture with depth-lifted skeletons (``kinect:N?skeleton=lifted``) vs the plain
source, side by side: does the estimator cost the recorder frames?

A paced fake Azure Kinect (pyk4a replaced as in the tests, 30 fps, 720p colour + NFOV depth
taken from the real recording in tests/data, with the real calibration) feeds `KinectSource`;
like the device, it keeps at most ``--queue`` captures and drops older ones when the app drains
it late, so late draining shows up as device-timestamp gaps (the source's dropped frames). The
consumer JPEG-encodes every colour frame (about a recorder's per-frame work). The lifted run adds
the estimator thread: a fake 2D estimator burning ``--cost-ms`` of GIL-free numpy work per frame
(RTMPose-m is ~11 ms per person on a desktop CPU, more on 2 busy cores), or the real RTMPose with
``--pose-model FILE [--det-model FILE]``. Also prints the aligned-depth cost: the whole image
(`depth_to_color`) vs only near 17 keypoints (``near=``), and their ratio.

    python bench/bench_lifted_capture.py [--seconds 10] [--cost-ms 40] [--pose-model FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the pyk4a fake the tests use

import pytest  # noqa: E402  (its MonkeyPatch installs and removes the fake)
from fakes import k4a as fake  # noqa: E402

from capture.kinect import KinectConfig, KinectSource  # noqa: E402
from capture.lifting import _pixel_rays, depth_to_color  # noqa: E402
from capture.mkv import MKVSource  # noqa: E402
from capture.pose2d import Person2D  # noqa: E402
from xmkd import skeleton as sk  # noqa: E402
from xmkd.errors import XmkdError  # noqa: E402

MKV = ROOT / "tests" / "data" / "kinect" / "azure-kinect-720p-nfov-1capture.mkv"


class BusyEstimator:
    """A 2D estimator costing ``cost_ms`` of GIL-free work (matrix products, as ONNX Runtime
    releases the GIL) and returning one person's fixed keypoints."""

    name = "busy-fake"
    layout = sk.COCO17

    def __init__(self, keypoints: np.ndarray, cost_ms: float):
        self.keypoints = keypoints
        self.cost = cost_ms / 1000.0
        self._a = np.random.default_rng(0).random((192, 192))

    def estimate2d(self, image: np.ndarray) -> list[Person2D]:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            self._a = np.tanh(self._a @ self._a)
        kp = self.keypoints
        return [Person2D(kp, np.ones(len(kp)), np.r_[kp.min(0), kp.max(0)])]

    def close(self) -> None:
        pass


def paced_capture_class(color: np.ndarray, depth: np.ndarray, fps: float, queue: int):
    """A fake device delivering the real images at ``fps`` in wall-clock time and keeping
    ``queue`` captures: drained late, it skips to the oldest it still holds (a dropped frame)."""
    period = 1.0 / fps
    bgra = np.concatenate([color, np.full(color.shape[:2] + (1,), 255, np.uint8)], axis=2)

    class Paced(fake.FakePyK4A):
        def get_capture(self, timeout: int = -1):
            if not self.is_running:
                raise fake.K4AException("Device is not running")
            now = time.perf_counter()
            if not hasattr(self, "_t0"):
                self._t0 = now
            due = int((now - self._t0) / period)
            if due - self._n >= queue:  # overflowed: the oldest captures are gone
                self._n = due - queue + 1
            if self._n >= self._spec.frames:
                raise fake.K4ATimeoutException()
            wait = self._t0 + self._n * period - now
            if wait > 0:
                time.sleep(wait)
            cap = fake.FakeCapture(self._config, self._n, 0, handle=0x1000 + self._n)
            cap.color, cap.depth = bgra.copy(), depth.copy()
            cap.color_timestamp_usec = cap.depth_timestamp_usec = int(self._n * period * 1e6)
            self._n += 1
            return cap

    return Paced


def run(mode: str, args, color, depth, calib_raw, estimator) -> dict:
    import cv2

    mp = pytest.MonkeyPatch()
    frames = int(args.seconds * 30)
    fake.install_fake_pyk4a(mp, [fake.FakeDeviceSpec(frames=frames)], calib_raw)
    mp.setattr(fake, "FakePyK4A", paced_capture_class(color, depth, 30.0, args.queue))
    sys.modules["pyk4a"].PyK4A = fake.FakePyK4A
    lifted = mode == "lifted"
    src = KinectSource(0, config=KinectConfig(bodies=lifted), pose2d=estimator if lifted else None)
    got, with_bodies = 0, 0
    worker = None
    start = time.perf_counter()
    try:
        with src:
            worker = src._worker  # closed (and unset) with the source
            for frame in src:
                cv2.imencode(".jpg", frame.color)  # the consumer's per-frame work
                got += 1
                with_bodies += bool(frame.bodies)
    except XmkdError:  # the fake device ran out of frames
        pass
    elapsed = time.perf_counter() - start
    mp.undo()
    return {
        "mode": mode,
        "frames": got,
        "fps": got / elapsed,
        "dropped": src.dropped_frames,
        "estimates": worker.estimated if worker else 0,
        "est_fps": (worker.estimated / elapsed) if worker else 0.0,
        "est_skipped": worker.dropped if worker else 0,
        "with_bodies": with_bodies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cost-ms", type=float, default=40.0, help="fake 2D estimator cost")
    parser.add_argument("--queue", type=int, default=2, help="captures the device holds")
    parser.add_argument("--pose-model", help="an RTMPose ONNX file: the real estimator")
    parser.add_argument("--det-model", help="an end-to-end person detector ONNX file")
    args = parser.parse_args()

    src = MKVSource(MKV, bodies=False, mirror=False)
    with src:
        frame = next(iter(src))
    calib, color, depth = src.calibration, frame.color, frame.depth
    calib_raw = src.calibration_json or ""
    # a plausible person: 17 keypoints over the middle of the colour image
    rng = np.random.default_rng(0)
    kp = np.column_stack([rng.uniform(520, 760, 17), rng.uniform(150, 650, 17)])

    _pixel_rays(calib.depth)  # the whole-image path's table, built once per lens
    t = time.perf_counter()
    for _ in range(5):
        depth_to_color(depth, calib)
    whole = (time.perf_counter() - t) / 5
    t = time.perf_counter()
    for _ in range(20):
        depth_to_color(depth, calib, near=kp, radius=4)
    near = (time.perf_counter() - t) / 20
    print(f"aligned depth, 720p colour / NFOV depth (real calibration): whole image "
          f"{whole * 1e3:.1f} ms, near 17 keypoints {near * 1e3:.1f} ms, "
          f"ratio {whole / near:.1f}x")  # fmt: skip

    if args.pose_model:
        from capture.pose2d import RTMPoseSpec

        estimator = RTMPoseSpec(
            Path(args.pose_model), Path(args.det_model) if args.det_model else None
        ).build()
        what = f"RTMPose {args.pose_model}"
    else:
        estimator = BusyEstimator(kp, args.cost_ms)
        what = f"fake 2D estimator, {args.cost_ms:.0f} ms/frame"
    print(f"\n30 fps for {args.seconds:.0f} s, device queue {args.queue}, consumer JPEG-encodes; "
          f"lifted = {what}")  # fmt: skip
    header = (
        f"{'source':<8} {'frames':>6} {'capture fps':>11} {'dropped':>7} "
        f"{'estimates':>9} {'est fps':>7} {'est skipped':>11} {'with bodies':>11}"
    )
    print(header)
    for mode in ("plain", "lifted"):
        r = run(mode, args, color, depth, calib_raw, estimator)
        print(
            f"{r['mode']:<8} {r['frames']:>6} {r['fps']:>11.1f} {r['dropped']:>7} "
            f"{r['estimates']:>9} {r['est_fps']:>7.1f} {r['est_skipped']:>11} "
            f"{r['with_bodies']:>11}"
        )


if __name__ == "__main__":
    main()
