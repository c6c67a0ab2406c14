"""Stand-ins for plain RGB capture (``video:``/``webcam:``): a camera-only pose estimator that
finds two drifting people, a small video written at test time, and an OpenCV ``VideoCapture``
playing a webcam (optionally paced in wall-clock time and keeping only a few frames, as a V4L2
camera does)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from capture.frames import Body
from capture.lifting import Intrinsics


class FakeEstimator:
    """Two people whose boxes drift right; ``delay`` seconds per image (a sleep: no CPU)."""

    name = "fake"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls = 0
        self.closed = False

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]:
        time.sleep(self.delay)
        self.calls += 1
        shift = float(self.calls)
        out = []
        for k, x in enumerate((100.0, 400.0)):
            px = np.tile([x + shift, 200.0], (25, 1)) + np.arange(25)[:, None] * [1.0, 4.0]
            joints = np.tile([0.5 - k, 0.0, 2.5], (25, 1))
            out.append(Body(id=0, joints=joints, color_px=px, depth_px=px))
        return out[::-1] if self.calls % 2 else out  # in either order

    def close(self) -> None:
        self.closed = True


def write_clip(path: str | Path, frames: int = 6, size=(64, 48), fps: float = 15.0) -> None:
    """An MJPG AVI of ``frames`` frames: a red band on the camera's left that widens."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[:, : 8 + i] = (0, 0, 255)
        writer.write(image)
    writer.release()


def fake_webcam(
    frames: int = 30,
    fps: float = 30.0,
    sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720)),
    paced: bool = False,
    buffers: int = 4,
    images: list[np.ndarray] | None = None,
) -> type:
    """A ``cv2.VideoCapture`` class for ``monkeypatch.setattr(cv2, "VideoCapture", ...)``.

    The camera offers ``sizes`` (the first by default; an asked size it lacks gives the nearest
    by area, as drivers do) and delivers ``frames`` frames at ``fps``. ``paced``: frames come
    in wall-clock time and the camera holds at most ``buffers`` of them, so a reader that comes
    late finds the older ones overwritten (skipped frames: gaps in ``CAP_PROP_POS_MSEC``, the
    frame timestamps). ``images`` (BGR, at the delivered size) are cycled instead of the
    default ramp; every image carries its frame number mod 256 in the green of its first 8
    pixels (top left, as the camera sees it). ``made`` lists the cameras opened."""
    import cv2

    class FakeWebcam:
        made: list[FakeWebcam] = []

        def __init__(self, index: int):
            self.index = index
            self.asked: dict[int, float] = {}
            self.width, self.height = sizes[0]
            self.n = 0  # the next frame number delivered
            self.delivered = 0
            self.last_ms = 0.0
            self._t0: float | None = None
            self.released = False
            FakeWebcam.made.append(self)

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return True

        def set(self, prop: int, value: float) -> bool:
            self.asked[prop] = value
            want_w = self.asked.get(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            want_h = self.asked.get(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            self.width, self.height = min(
                sizes, key=lambda s: (abs(s[0] * s[1] - want_w * want_h), s)
            )
            return True

        def get(self, prop: int) -> float:
            return {
                cv2.CAP_PROP_FPS: fps,
                cv2.CAP_PROP_FRAME_WIDTH: float(self.width),
                cv2.CAP_PROP_FRAME_HEIGHT: float(self.height),
                cv2.CAP_PROP_POS_MSEC: self.last_ms,
            }.get(prop, 0.0)

        def read(self) -> tuple[bool, Any]:
            if paced:
                now = time.perf_counter()
                if self._t0 is None:
                    self._t0 = now
                ready = int((now - self._t0) * fps)  # frames the sensor has made by now
                if ready - self.n >= buffers:  # the oldest ones were overwritten
                    self.n = ready - buffers + 1
                wait = self._t0 + self.n / fps - now
                if wait > 0:
                    time.sleep(wait)
            if self.n >= frames:
                return False, None
            number = self.n
            self.n += 1
            self.delivered += 1
            self.last_ms = 1000.0 * number / fps  # the frame's timestamp
            if images:
                image = images[number % len(images)].copy()
            else:
                image = np.zeros((self.height, self.width, 3), np.uint8)
                image[:, :, 2] = np.linspace(0, 255, self.width, dtype=np.uint8)[None, :]
                image[:, :, 1] = number % 256
            image[0, :8, 1] = number % 256  # the frame number (mod 256), top left
            return True, image

        def release(self) -> None:
            self.released = True

    return FakeWebcam
