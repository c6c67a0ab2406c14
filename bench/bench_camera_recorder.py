"""Does a camera-only pose estimator cost the recorder frames? The estimator on the capture
thread ("inline") against on its own thread ("off-thread", what ``webcam:`` does), side by side,
through the real recorder (`capture.recorder.Recorder`: JPEG writer, chunked clips, optional
live flow), at 720p 30 fps.

The camera is a paced fake webcam (``tests/fakes/camera.py`` in place of OpenCV's capture):
frames come in wall-clock time and it holds at most ``--buffers`` of them (V4L2's default
is 4), so a reader that comes late finds older frames overwritten, which shows as gaps in the
frame timestamps: the device drops the recorder reports. Its images are the synthetic renderer's
(1280x720), so JPEG costs what it costs on a scene. The estimator costs ``--cost-ms`` per frame
(``--work busy``: GIL-free numpy matrix products, as ONNX Runtime or TFLite burn the CPU; ``sleep``:
no CPU at all), reads the frame number the camera stamps into each image and returns one person
marked with it, so the lag of the skeleton behind its frame is measured too. ``--estimator NAME``
runs a real one of `capture.camera.ESTIMATORS` instead (MediaPipe, where it is installed).

Video files (``video:FILE``, played as fast as they are estimated) are measured too: the same
720p images written to an MJPG file, recorded with a free estimator while the recorder waits for
its writer (what it does for a source that is not live) and, as before that change, never waits
(frames past a full queue lost), and with the ``--cost-ms`` estimator inline.

    python bench/bench_camera_recorder.py [--seconds 15] [--cost-ms 40] [--work busy] [--flow]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# the fixed-cost estimator is one core's work: OpenBLAS would spread its products over every core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (its MonkeyPatch installs and removes the fake camera)

from capture.camera import WebcamSource  # noqa: E402
from capture.frames import Body  # noqa: E402
from tests.fakes.camera import fake_webcam  # noqa: E402
from xmkd.tables import print_table as table  # noqa: E402

FPS = 30.0
SIZE = (1280, 720)


class FixedCostEstimator:
    """One person per image after ``cost_ms`` of work; the person's joints carry the frame
    number the fake camera stamped into the image (x of every joint, in "metres")."""

    name = "fixed-cost"

    def __init__(self, cost_ms: float, work: str):
        self.cost = cost_ms / 1000.0
        self.work = work
        self.calls = 0
        self._a = np.random.default_rng(0).random((192, 192))

    def estimate(self, image: np.ndarray, camera=None) -> list[Body]:
        end = time.perf_counter() + self.cost
        if self.work == "sleep":
            time.sleep(self.cost)
        else:
            while time.perf_counter() < end:
                self._a = np.tanh(self._a @ self._a)
        self.calls += 1
        number = float(image[0, :8, 1].mean().round())
        joints = np.tile([number, 0.0, 2.5], (25, 1))
        px = np.tile([640.0, 360.0], (25, 1)) + np.arange(25)[:, None]
        return [Body(id=0, joints=joints, color_px=px, depth_px=px.copy())]

    def close(self) -> None:
        pass


class Counted:
    """An estimator that counts its calls."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.name = estimator.name
        self.calls = 0

    def estimate(self, image: np.ndarray, camera=None) -> list[Body]:
        self.calls += 1
        return self.estimator.estimate(image, camera)

    def close(self) -> None:
        self.estimator.close()


class MeasuredWebcam(WebcamSource):
    """`WebcamSource` that notes each frame's skeleton lag (frames between the frame and the
    frame its skeleton was estimated on); ``inline=True`` runs the estimator on the capture
    thread (the worker is closed once opened)."""

    def __init__(self, index: int, estimator, inline: bool = False, **kwargs):
        self.counted = Counted(estimator)
        super().__init__(index, estimator=self.counted, **kwargs)
        self.inline = inline
        self.stamped = isinstance(estimator, FixedCostEstimator)  # its joints say the frame
        self.lags: list[int] = []

    def _open(self) -> None:
        super()._open()
        if self.inline and self._worker is not None:
            self._worker.close()
            self._worker = None

    def _make_frame(self, index, image, device_usec):
        frame = super()._make_frame(index, image, device_usec)
        if frame.bodies and self.stamped:
            number = int(round(device_usec * FPS / 1e6))
            self.lags.append((number - int(frame.bodies[0].joints[0, 0])) % 256)
        return frame

    @property
    def estimates(self) -> int:
        return self.counted.calls


def synthetic_images(count: int) -> list[np.ndarray]:
    """``count`` 720p colour frames of the synthetic renderer (BGR)."""
    from capture.source import open_source

    images = []
    with open_source(f"synthetic?width={SIZE[0]}&height={SIZE[1]}&realtime=0") as src:
        for frame in src:
            images.append(np.ascontiguousarray(frame.color))
            if len(images) == count:
                break
    return images


def record(source, seconds: float | None, flow: bool, out: Path) -> tuple[dict, float]:
    """Record ``source`` into ``out``: the recorder's stats and the wall-clock seconds."""
    from capture.recorder import RecordConfig, Recorder

    config = RecordConfig(clip_seconds=5.0, max_seconds=seconds, flow=flow, min_free_mb=200)
    recorder = Recorder([source], out, config, log=lambda m: None)
    start = time.perf_counter()
    recorder.start()
    stats = recorder.wait()
    return stats, time.perf_counter() - start


def written(session: Path) -> int:
    """Frames in the session's clips (read back with OpenCV: the real one)."""
    from xmkd.recordings import Session

    return sum(c.frames for c in Session.open(session).clips)


def webcam_row(
    name, args, images, estimator, inline: bool, tmp: Path, nice: int | None = None
) -> tuple[str, ...]:
    """Record the paced webcam; ``nice``: the estimator thread's priority steps below the
    capture's (None: the source's default, `capture.camera.ESTIMATOR_NICE`)."""
    import cv2

    import capture.camera as camera_module

    mp = pytest.MonkeyPatch()
    if nice is not None:
        mp.setattr(camera_module, "ESTIMATOR_NICE", nice)
    frames = int((args.seconds + 5) * FPS)  # more than the recording takes
    camera = fake_webcam(frames, FPS, (SIZE,), paced=True, buffers=args.buffers, images=images)
    mp.setattr(cv2, "VideoCapture", camera)
    try:
        width, height = SIZE
        source = MeasuredWebcam(0, estimator, inline=inline, width=width, height=height,
                                fps=FPS, people=1)  # fmt: skip
        stats, wall = record(source, args.seconds, args.flow, tmp / name)
    finally:
        mp.undo()
    frames = written(tmp / name)
    lag = f"{np.mean(source.lags):.1f}" if source.lags else "-"
    return (
        name,
        str(frames),
        f"{frames / args.seconds:.1f}",
        str(stats["dropped_frames"][1]),
        str(stats["queue_overflow"][1]),
        str(source.estimates),
        f"{source.estimates / args.seconds:.1f}",
        lag,
    )


def file_row(name, args, clip: Path, frames: int, estimator, waits: bool, tmp: Path):
    import capture.recorder as recorder_module
    from capture.camera import VideoSource

    mp = pytest.MonkeyPatch()
    if not waits:  # the recorder before it waited for sources that are not live
        mp.setattr(recorder_module, "is_live", lambda source: True)
    try:
        source = VideoSource(clip, estimator=estimator, people=1)
        stats, wall = record(source, None, args.flow, tmp / name)
    finally:
        mp.undo()
    kept = written(tmp / name)
    return (name, f"{kept}/{frames}", f"{kept / wall:.1f}", f"{wall:.1f}",
            str(stats["queue_overflow"][1]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each webcam recording")
    parser.add_argument("--cost-ms", type=float, default=40.0, help="the estimator's cost")
    parser.add_argument("--work", choices=("busy", "sleep"), default="busy")
    parser.add_argument("--buffers", type=int, default=4, help="frames the camera holds")
    parser.add_argument("--flow", action="store_true", help="live optical flow (off: none)")
    parser.add_argument("--file-seconds", type=float, default=10.0, help="the video file's")
    parser.add_argument("--estimator", help="a real camera-only estimator (e.g. mediapipe)")
    parser.add_argument("--part", choices=("webcam", "file", "both"), default="both")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPU cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    images = synthetic_images(30)
    if args.estimator:
        from capture.camera import make_estimator

        def costly():
            return make_estimator(args.estimator, 1)

        what = f"{args.estimator} (real)"
    else:

        def costly():
            return FixedCostEstimator(args.cost_ms, args.work)

        what = f"{args.cost_ms:.0f} ms/frame ({args.work})"
    tmp = Path(tempfile.mkdtemp(prefix="bench-camera-recorder-"))
    try:
        if args.part != "file":
            webcam_table(args, images, costly, what, tmp)
        if args.part != "webcam":
            file_table(args, images, costly, what, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("device drops: gaps in the camera's frame timestamps (frames overwritten before they "
          "were read); queue overflow: frames the recorder's queue refused; lag frames: mean "
          "frames between a frame and the frame its skeleton was estimated on")  # fmt: skip


def webcam_table(args, images, costly, what: str, tmp: Path) -> None:
    from capture.camera import ESTIMATOR_NICE

    flow = "on" if args.flow else "off"
    print(f"\nwebcam 1280x720 at 30 fps (camera holds {args.buffers} frames), "
          f"{args.seconds:.0f} s each, recorder with flow {flow}; estimator {what}")  # fmt: skip
    rows = [
        webcam_row("no cost", args, images, FixedCostEstimator(0.0, "sleep"), False, tmp),
        webcam_row("inline", args, images, costly(), True, tmp),
        webcam_row("off-thread, same priority", args, images, costly(), False, tmp, 0),
        webcam_row(f"off-thread, nice +{ESTIMATOR_NICE}", args, images, costly(), False, tmp),
    ]
    table(("estimator", "written", "fps", "device drops", "queue overflow", "estimates",
           "est/s", "lag frames"), rows)  # fmt: skip
    base, inline = float(rows[0][2]), float(rows[1][2])
    for row in rows[2:]:
        print(f"{row[0]}: {float(row[2]) / inline:.2f}x the inline fps, "
              f"{float(row[2]) / base:.2f}x the no-cost fps")  # fmt: skip


def file_table(args, images, costly, what: str, tmp: Path) -> None:
    frames = int(args.file_seconds * FPS)
    clip = tmp / "people.avi"
    write_clip_from(images, clip, frames)
    print(f"\nvideo file 1280x720, {frames} frames (MJPG), recorded as fast as it is "
          f"estimated, flow {'on' if args.flow else 'off'}")  # fmt: skip
    free = FixedCostEstimator(0.0, "sleep")
    rows = [
        file_row("free, recorder waits", args, clip, frames, free, True, tmp),
        file_row("free, never waits (before)", args, clip, frames, free, False, tmp),
        file_row(f"{what} inline", args, clip, frames, costly(), True, tmp),
    ]
    table(("estimator / recorder", "written", "fps", "wall s", "queue overflow"), rows)


def write_clip_from(images: list[np.ndarray], path: Path, frames: int) -> None:
    """An MJPG AVI of ``frames`` frames cycling ``images``, each stamped with its number like
    the fake camera's."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for n in range(frames):
        image = images[n % len(images)].copy()
        image[0, :8, 1] = n % 256
        writer.write(image)
    writer.release()


if __name__ == "__main__":
    main()
