"""2D keypoint estimators for depth lifting, and the depth-lifted estimator built on them.

An `Estimator2D` turns one BGR image (as the camera sees it, not mirrored) into people, each
COCO-17 keypoints in pixels with per-keypoint scores. `DepthLiftedEstimator` feeds them, with the
frame's depth, through `capture.lifting.DepthLifter` to NTU-25 bodies in metres; the Kinect and
MKV sources use it with ``?skeleton=lifted``.

* `RTMPose`: an RTMPose ONNX model (mmpose's SimCC top-down model, e.g. the
  ``end2end.onnx`` of ``rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip`` from
  openmmlab's ``onnx_sdk``) run by ONNX Runtime (the ``onnx`` extra). Per person box, the
  documented RTMPose preprocessing: the box is padded 1.25x, widened or heightened to the model's
  aspect ratio, warped affinely to the model's input size, converted to RGB (mmpose's
  ``bgr_to_rgb``) and normalised by ImageNet's mean and std; the two SimCC outputs (x and y
  classification vectors per keypoint, ``split_ratio`` 2 bins per input pixel) are decoded by
  their argmax, the score being the smaller of the two maxima. Nothing is downloaded: the model
  path comes from ``?pose_model=FILE`` or ``XMKD_POSE_MODEL``.
* People are found first (RTMPose sees one person per crop): by `OnnxPersonDetector`, an
  RTMDet/YOLOX person detector exported end to end by mmdeploy (outputs ``dets`` (1, N, 5) boxes
  and scores in the letterboxed input, and ``labels`` (1, N)), from ``?det_model=FILE`` or
  ``XMKD_DET_MODEL``; or, with no detector model, `HogPeopleDetector`, OpenCV's built-in HOG +
  linear SVM people detector (its weights ship inside OpenCV 4.x, no file), which finds upright,
  mostly unoccluded people at least ~128 px tall and is slower and less reliable than a learned
  detector. OpenCV 5 moved HOG out of the main package (to opencv-contrib's xobjdetect); there,
  without a detector model, RTMPose sees the whole image as one person's box (`WholeImage`,
  rtmlib's default too): one person only, and smaller in the crop, so give ``det_model`` for
  two-person actions.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from capture.frames import Body, option_num
from capture.lifting import DepthLifter, depth_to_color
from xmkd.errors import FormatError, XmkdError, require
from xmkd.skeleton import COCO17, NOT_TRACKED, JointLayout, scores_to_tracking

log = logging.getLogger(__name__)
POSE_MODEL_ENV = "XMKD_POSE_MODEL"
DET_MODEL_ENV = "XMKD_DET_MODEL"
RTMPOSE_URL = (
    "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
    "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip"
)
RTMDET_URL = (
    "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
    "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip"
)
#: mmpose's RTMPose data preprocessor (RGB order)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass
class Person2D:
    """One person found in an image: keypoints (K, 2) in pixels of the unmirrored image, their
    scores (K,) and the box (x0, y0, x1, y1) the person was found in."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray

    def states(self, tracked: float = 0.5, inferred: float = 0.2) -> np.ndarray:
        """NTU tracking state per keypoint from its score (`scores_to_tracking`)."""
        return scores_to_tracking(self.scores, tracked, inferred)


@runtime_checkable
class Estimator2D(Protocol):
    """Finds the people in one BGR image (not mirrored): 2D keypoints of ``layout``."""

    name: str
    layout: JointLayout

    def estimate2d(self, image: np.ndarray) -> list[Person2D]: ...

    def close(self) -> None: ...


@runtime_checkable
class PersonDetector(Protocol):
    """People boxes in one BGR image: (N, 5) rows of x0 y0 x1 y1 score, best first."""

    name: str

    def detect(self, image: np.ndarray) -> np.ndarray: ...


# ---- ONNX Runtime sessions ------------------------------------------------------------------
def model_path(
    options: dict[str, str], key: str, env: str, url: str, what: str, required: bool
) -> Path | None:
    """The model file of option ``key`` (else the environment variable ``env``); one sentence
    naming the option and where to get the model when it is missing (or None if optional)."""
    value = options.pop(key, None) or os.environ.get(env) or None
    if value is None:
        if not required:
            return None
        raise XmkdError(
            f"skeleton=lifted needs {what}: give its file as the source option {key}=FILE or in "
            f"{env} (e.g. end2end.onnx from {url}); nothing is downloaded"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise XmkdError(
            f"source option {key}={value}: no such file; {what} is an ONNX file such as "
            f"end2end.onnx from {url}"
        )
    return path


def onnx_session(path: str | Path, option: str, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for ``path``; one sentence when it cannot load. ``threads``:
    ONNX Runtime's intra-op threads (1 leaves the other core to the capture thread)."""
    ort = require("onnxruntime", "onnx", "the RTMPose estimator")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(int(threads), 1)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises several error classes
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(
            path, f"({option}) is not an ONNX model ONNX Runtime can load ({message})"
        ) from exc


def _fixed_input_size(session: Any, path: Path, option: str) -> tuple[int, int]:
    """(width, height) of a session's (1, 3, H, W) image input."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]) or shape[1] != 3:
        raise FormatError(path, f"({option}) must take one (1, 3, H, W) image, not {shape}")
    return int(shape[3]), int(shape[2])


# ---- person detectors -----------------------------------------------------------------------
class HogPeopleDetector:
    """OpenCV's built-in HOG + linear SVM people detector (Dalal-Triggs; its SVM ships inside
    OpenCV, no model file): ``detect(image)`` -> (n, 5) boxes ``x0, y0, x1, y1, score``, best
    first. The one HOG detector of xmkd: RTMPose's default person finder here, and the camera
    sources' (`capture.camera.PeopleCrops`) with their own settings.

    It looks for whole upright bodies (a 64x128 window), so it misses people cut at the waist.
    The image is shrunk to at most ``max_width`` pixels first: HOG's cost grows with the area,
    and people filling a good part of a camera's view are still far above the window's size
    there. Boxes scoring below ``min_score`` are dropped, then overlapping ones (IoU above
    ``max_overlap``) keep the best; at most ``max_people`` remain, each widened by ``widen`` of
    its width on both sides (HOG's window hugs the torso; RTMPose's crop should hold the arms).
    OpenCV 5 moved HOG to its contrib modules: ``opencv-contrib-python`` has it,
    ``opencv-python-headless`` 5 does not (:func:`has_hog`)."""

    name = "opencv-hog"

    def __init__(
        self,
        max_width: int = 640,
        min_score: float = 0.3,
        max_overlap: float = 0.4,
        max_people: int = 4,
        widen: float = 0.1,
    ):
        import cv2

        if not has_hog():
            raise XmkdError(f"OpenCV {cv2.__version__} has no HOG people detector")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_width = int(max_width)
        self.min_score = float(min_score)
        self.max_overlap = float(max_overlap)
        self.max_people = int(max_people)
        self.widen = float(widen)

    def detect(self, image: np.ndarray) -> np.ndarray:
        import cv2

        from capture.bodyids import box_iou

        scale = min(1.0, self.max_width / image.shape[1])
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale)
        rects, scores = self._hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8))
        found = sorted(
            zip(np.reshape(scores, -1).tolist(), np.reshape(rects, (-1, 4)).tolist()),
            key=lambda item: -item[0],
        )
        kept: list[np.ndarray] = []
        for score, (x, y, w, h) in found:
            box = np.array([x, y, x + w, y + h, score], dtype=np.float64)
            box[:4] /= scale
            if score >= self.min_score and all(
                box_iou(box[:4], other[:4]) <= self.max_overlap for other in kept
            ):
                kept.append(box)
            if len(kept) == self.max_people:
                break
        boxes = np.array(kept, dtype=np.float64).reshape(-1, 5)
        margin = self.widen * (boxes[:, 2] - boxes[:, 0])
        boxes[:, 0] -= margin
        boxes[:, 2] += margin
        return boxes


def has_hog() -> bool:
    """Whether this OpenCV has the HOG people detector (4.x, or 5 with the contrib modules)."""
    import cv2

    return hasattr(cv2, "HOGDescriptor")


class WholeImage:
    """The whole image as one person's box (when no detector is available)."""

    name = "whole-image"

    def detect(self, image: np.ndarray) -> np.ndarray:
        return np.array([[0.0, 0.0, image.shape[1], image.shape[0], 1.0]])


def default_detector() -> PersonDetector:
    """OpenCV's HOG people detector where OpenCV has it (4.x), else `WholeImage` (OpenCV 5)."""
    import cv2

    if has_hog():
        return HogPeopleDetector()
    log.warning(
        "OpenCV %s has no HOG people detector: without det_model, RTMPose takes the whole "
        "image as one person",
        cv2.__version__,
    )
    return WholeImage()


class OnnxPersonDetector:
    """An RTMDet/YOLOX person detector exported end to end by mmdeploy (as in openmmlab's
    ``onnx_sdk`` zips): input (1, 3, H, W) float32 BGR 0-255, the image resized to fit and padded
    with 114 at the bottom/right; outputs ``dets`` (1, N, 5) (x0 y0 x1 y1 score in the input's
    pixels) and, when present, ``labels`` (1, N) (0 = person)."""

    name = "onnx-detector"

    def __init__(
        self, path: str | Path, min_score: float = 0.5, max_people: int = 4, threads: int = 1
    ):
        self.path = Path(path)
        self.session = onnx_session(self.path, "det_model", threads)
        self.input_size = _fixed_input_size(self.session, self.path, "det_model")
        self.min_score = float(min_score)
        self.max_people = int(max_people)

    def detect(self, image: np.ndarray) -> np.ndarray:
        import cv2

        w_in, h_in = self.input_size
        ratio = min(w_in / image.shape[1], h_in / image.shape[0])
        size = (max(int(image.shape[1] * ratio), 1), max(int(image.shape[0] * ratio), 1))
        padded = np.full((h_in, w_in, 3), 114, dtype=np.uint8)
        padded[: size[1], : size[0]] = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
        outputs = self.session.run(None, {self.session.get_inputs()[0].name: x})
        dets = np.asarray(outputs[0], dtype=np.float64)
        if dets.ndim != 3 or dets.shape[-1] != 5:
            raise FormatError(
                self.path,
                f"(det_model) gives {dets.shape} boxes; an end-to-end (mmdeploy) detector gives "
                "dets (1, N, 5) and labels (1, N)",
            )
        dets = dets[0]
        if len(outputs) > 1:  # labels: keep people only
            dets = dets[np.asarray(outputs[1]).reshape(-1)[: len(dets)] == 0]
        dets = dets[dets[:, 4] >= self.min_score]
        dets = dets[np.argsort(-dets[:, 4])][: self.max_people]
        dets[:, :4] /= ratio
        return dets


# ---- RTMPose --------------------------------------------------------------------------------
def box_to_center_scale(box: np.ndarray, aspect: float, padding: float = 1.25):
    """RTMPose's crop of a box (x0, y0, x1, y1): its centre, and its size padded by ``padding``
    and grown along one side to the model's ``aspect`` (width / height)."""
    box = np.asarray(box, dtype=np.float64)
    center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    w, h = (box[2] - box[0]) * padding, (box[3] - box[1]) * padding
    scale = np.array([w, w / aspect]) if w > h * aspect else np.array([h * aspect, h])
    return center, scale


def crop_matrix(center: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine matrix taking the crop (``center``, ``scale`` (w, h)) of an image to the
    model's input of ``size`` (w, h): the crop's centre lands on the input's centre."""
    s = size[0] / scale[0]  # the aspect already matches: one scale for both axes
    return np.array([[s, 0.0, size[0] / 2 - s * center[0]], [0.0, s, size[1] / 2 - s * center[1]]])


def decode_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC outputs (N, K, Wx) and (N, K, Wy) -> keypoints (N, K, 2) in the model's input
    pixels and scores (N, K): each axis's argmax bin / ``split_ratio``; the score is the smaller
    of the two maxima (a keypoint with a non-positive score is not found)."""
    sx = np.asarray(simcc_x, dtype=np.float64)
    sy = np.asarray(simcc_y, dtype=np.float64)
    locs = np.stack([sx.argmax(axis=-1), sy.argmax(axis=-1)], axis=-1) / split_ratio
    scores = np.minimum(sx.max(axis=-1), sy.max(axis=-1))
    return locs, scores


class RTMPose:
    """RTMPose (ONNX, SimCC head) on the people a `PersonDetector` finds: COCO-17 keypoints."""

    name = "rtmpose"
    layout = COCO17

    def __init__(
        self,
        path: str | Path,
        detector: PersonDetector | None = None,
        *,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        padding: float = 1.25,
        split_ratio: float = 2.0,
        threads: int = 1,
    ):
        self.path = Path(path)
        self.session = onnx_session(self.path, "pose_model", threads)
        self.input_size = _fixed_input_size(self.session, self.path, "pose_model")
        outputs = self.session.get_outputs()
        if len(outputs) != 2:
            raise FormatError(
                self.path, f"(pose_model) has {len(outputs)} outputs; RTMPose's SimCC head has 2"
            )
        joints = outputs[0].shape[1] if len(outputs[0].shape) == 3 else None
        if isinstance(joints, int) and joints != self.layout.num_joints:
            raise FormatError(
                self.path, f"(pose_model) gives {joints} keypoints; COCO-17 models give 17"
            )
        self.detector: PersonDetector = detector or default_detector()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.padding = float(padding)
        self.split_ratio = float(split_ratio)

    def keypoints_in(self, image: np.ndarray, box: np.ndarray) -> Person2D:
        """One person's keypoints in the box (x0, y0, x1, y1) of a BGR image."""
        import cv2

        w_in, h_in = self.input_size
        center, scale = box_to_center_scale(box[:4], w_in / h_in, self.padding)
        matrix = crop_matrix(center, scale, self.input_size)
        crop = cv2.warpAffine(image, matrix, (w_in, h_in), flags=cv2.INTER_LINEAR)
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        x = ((crop - self.mean) / self.std).transpose(2, 0, 1)[None]
        simcc_x, simcc_y = self.session.run(
            None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x)}
        )
        locs, scores = decode_simcc(simcc_x, simcc_y, self.split_ratio)
        # back from the input's pixels to the image's (the inverse of crop_matrix)
        keypoints = locs[0] / np.array([w_in, h_in]) * scale + center - scale / 2
        return Person2D(keypoints, scores[0], np.asarray(box[:4], dtype=np.float64))

    def estimate2d(self, image: np.ndarray) -> list[Person2D]:
        image = np.ascontiguousarray(image)
        return [self.keypoints_in(image, box) for box in self.detector.detect(image)]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RTMPoseSpec:
    """The model files and threads of an `RTMPose` (one estimator per device is built from it:
    each capture thread's worker runs its own session)."""

    pose_model: Path
    det_model: Path | None = None
    threads: int = 1

    def build(self) -> RTMPose:
        detector = (
            None
            if self.det_model is None
            else OnnxPersonDetector(self.det_model, threads=self.threads)
        )
        return RTMPose(self.pose_model, detector, threads=self.threads)


def rtmpose_spec(options: dict[str, str]) -> RTMPoseSpec:
    """The RTMPose of a source's ``pose_model``, ``det_model`` and ``pose_threads`` options (or
    ``XMKD_POSE_MODEL`` / ``XMKD_DET_MODEL``); pops what it reads, one sentence when the pose
    model is not given or a file is missing."""
    threads = option_num(options, "pose_threads", 1)
    pose = model_path(
        options, "pose_model", POSE_MODEL_ENV, RTMPOSE_URL, "an RTMPose ONNX model", True
    )
    det = model_path(
        options, "det_model", DET_MODEL_ENV, RTMDET_URL, "a person detector ONNX model", False
    )
    assert pose is not None
    return RTMPoseSpec(pose, det, threads)


def rtmpose_from_options(options: dict[str, str]) -> RTMPose:
    """`rtmpose_spec` built (the models load now, so a bad file is one sentence now)."""
    return rtmpose_spec(options).build()


# ---- 2D estimator + depth -> NTU bodies -----------------------------------------------------
@dataclass
class RGBD:
    """One capture for the lifted estimator: colour (H_c, W_c, 3) BGR and the depth camera's
    image (H_d, W_d) uint16 mm, both as the camera sees them (not mirrored)."""

    color: np.ndarray
    depth: np.ndarray


class DepthLiftedEstimator:
    """2D keypoints (`Estimator2D`) lifted with an Azure Kinect's depth and calibration
    (`DepthLifter`): ``estimate(RGBD)`` gives NTU bodies (IDs assigned by the caller, e.g.
    `capture.camera.EstimatorWorker`). The depth is moved into the colour camera only around
    the keypoints (`capture.lifting.depth_to_color` with ``near``); keypoints whose depth is not
    trusted are "inferred", keypoints the estimator scored low stay as the score says."""

    def __init__(self, estimator: Estimator2D, calibration: Any, radius: int = 4):
        self.estimator = estimator
        self.calibration = calibration
        self.name = f"{estimator.name}+depth"
        self.lifter = DepthLifter(
            calibration.color, estimator.layout, radius=radius, calibration=calibration
        )

    def estimate(self, rgbd: RGBD) -> list[Body]:
        people = self.estimator.estimate2d(rgbd.color)
        if not people:
            return []
        states = [p.states() for p in people]
        found = [p.keypoints[s > NOT_TRACKED] for p, s in zip(people, states, strict=True)]
        near = np.concatenate(found) if any(len(f) for f in found) else np.zeros((0, 2))
        aligned = depth_to_color(rgbd.depth, self.calibration, near=near, radius=self.lifter.radius)
        bodies = []
        for person, st in zip(people, states, strict=True):
            lifted = self.lifter.lift(person.keypoints, aligned, st)
            if lifted is not None:
                bodies.append(lifted.body)
        return bodies

    def close(self) -> None:
        self.estimator.close()
