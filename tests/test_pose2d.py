"""The 2D keypoint estimator behind depth lifting (RTMPose ONNX + a person detector) and the
depth-lifted skeletons of Kinect/MKV streams (``?skeleton=lifted``).

Nothing is downloaded: the ONNX models are tiny torch modules exported here with RTMPose's and
mmdeploy's input/output signatures (a pose model whose SimCC vectors peak where a red marker
is, or at fixed bins; a detector that reports fixed boxes). The lifted sources run on the real
Azure Kinect MKV in tests/data with its real calibration, against that calibration's own
unprojection, and through ``xmkd record`` into an NTU-compatible session."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from capture.lifting import unproject_camera
from capture.pose2d import (
    RGBD,
    DepthLiftedEstimator,
    HogPeopleDetector,
    OnnxPersonDetector,
    Person2D,
    RTMPose,
    WholeImage,
    box_to_center_scale,
    decode_simcc,
)
from xmkd import skeleton as sk
from xmkd.errors import FormatError, XmkdError

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

MKV = "azure-kinect-720p-nfov-1capture.mkv"
INPUT_W, INPUT_H = 192, 256  # RTMPose-m's input (w, h)


def _export(module, path, inputs, outputs) -> None:
    module.eval()
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, INPUT_H, INPUT_W) if inputs == "pose" else inputs,),
        str(path),
        input_names=["input"],
        output_names=outputs,
        opset_version=17,
        dynamo=False,
    )


class _MarkerPose(torch.nn.Module):
    """SimCC = the model input's first channel (R after RGB conversion) maxed over rows and
    columns, at 2 bins per pixel: every keypoint peaks where the reddest pixel of the crop is."""

    def forward(self, x):
        red = x[:, 0]  # (1, H, W)
        sx = red.amax(dim=1).repeat_interleave(2, dim=-1)  # (1, 2W)
        sy = red.amax(dim=2).repeat_interleave(2, dim=-1)  # (1, 2H)
        return sx[:, None].expand(1, 17, -1), sy[:, None].expand(1, 17, -1)


class _FixedPose(torch.nn.Module):
    """SimCC vectors peaking at fixed bins (a one-hot per keypoint), whatever the image."""

    def __init__(self, bins_x, bins_y):
        super().__init__()
        self.register_buffer("sx", torch.nn.functional.one_hot(torch.tensor(bins_x), 2 * INPUT_W))
        self.register_buffer("sy", torch.nn.functional.one_hot(torch.tensor(bins_y), 2 * INPUT_H))

    def forward(self, x):
        zero = x.mean() * 0
        return self.sx[None].float() + zero, self.sy[None].float() + zero


class _FixedDetector(torch.nn.Module):
    """mmdeploy's end-to-end detector outputs: dets (1, N, 5) in the letterboxed input's
    pixels and labels (1, N)."""

    def __init__(self, dets, labels):
        super().__init__()
        self.register_buffer("dets", torch.tensor(dets, dtype=torch.float32)[None])
        self.register_buffer("labels", torch.tensor(labels, dtype=torch.int64)[None])

    def forward(self, x):
        return self.dets + x.mean() * 0, self.labels


@pytest.fixture(scope="module")
def marker_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "marker_rtmpose.onnx"
    _export(_MarkerPose(), path, "pose", ["simcc_x", "simcc_y"])
    return path


class _Boxes:
    name = "fixed-boxes"

    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)

    def detect(self, image):
        return self.boxes


def test_simcc_decoding_takes_each_axis_argmax_and_the_smaller_maximum():
    sx = np.zeros((1, 2, 8))
    sy = np.zeros((1, 2, 6))
    sx[0, 0, 5], sy[0, 0, 2] = 0.9, 0.4
    sx[0, 1, 1], sy[0, 1, 3] = 0.2, 0.7
    locs, scores = decode_simcc(sx, sy, split_ratio=2.0)
    np.testing.assert_allclose(locs[0], [[2.5, 1.0], [0.5, 1.5]])
    np.testing.assert_allclose(scores[0], [0.4, 0.2])
    # the crop follows the model's aspect ratio (192 / 256) after 1.25x padding
    center, scale = box_to_center_scale(np.array([100, 50, 200, 450]), 0.75)
    np.testing.assert_allclose(center, [150, 250])
    np.testing.assert_allclose(scale, [375, 500])


@pytest.mark.parametrize("box", [(500, 100, 800, 700), (600, 300, 700, 420), (0, 0, 1280, 720)])
def test_rtmpose_finds_a_marker_through_the_documented_crop_and_normalisation(marker_model, box):
    u, v = 651, 377
    yy, xx = np.mgrid[0:720, 0:1280]
    blob = np.round(255 * np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 6.0**2)))
    image = np.zeros((720, 1280, 3), np.uint8)
    image[..., 2] = blob  # a red blob (BGR) peaking at (u, v), seen at any crop scale
    est = RTMPose(marker_model, _Boxes([(*box, 0.9)]))
    (person,) = est.estimate2d(image)
    w = (box[2] - box[0]) * 1.25
    h = (box[3] - box[1]) * 1.25
    px = max(w / INPUT_W, h / INPUT_H)  # image pixels per input pixel
    np.testing.assert_allclose(person.keypoints, np.tile([u, v], (17, 1)), atol=px + 0.5)
    assert (person.states() == sk.TRACKED).all()
    np.testing.assert_allclose(person.box, box)
    # RTMPose reads RGB: a blue marker leaves the red channel flat, nothing scores positive
    image = image[..., ::-1].copy()  # the same blob in blue
    (blue,) = est.estimate2d(image)
    assert (blue.scores <= 0).all() and (blue.states() == sk.NOT_TRACKED).all()


def test_the_end_to_end_detector_maps_boxes_back_and_keeps_people_only(tmp_path):
    path = tmp_path / "det.onnx"
    # in a 640x640 letterbox of a 1280x720 image (ratio 0.5): boxes in input pixels
    dets = [[100, 50, 200, 300, 0.9], [300, 40, 360, 200, 0.95], [10, 10, 50, 50, 0.2]]
    _export(_FixedDetector(dets, [0, 1, 0]), path, torch.zeros(1, 3, 640, 640), ["dets", "labels"])
    det = OnnxPersonDetector(path, min_score=0.5)
    assert det.input_size == (640, 640)
    boxes = det.detect(np.zeros((720, 1280, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[200, 100, 400, 600, 0.9]], rtol=1e-6)


def test_without_a_detector_model_people_are_found_by_hog_or_the_whole_image(
    monkeypatch, marker_model
):
    import cv2

    if hasattr(cv2, "HOGDescriptor"):  # OpenCV 4.x ships HOG's people SVM
        assert isinstance(RTMPose(marker_model).detector, HogPeopleDetector)
        boxes = HogPeopleDetector().detect(np.full((720, 1280, 3), 90, np.uint8))
        assert boxes.shape == (0, 5)  # nobody in an empty room
        monkeypatch.delattr(cv2, "HOGDescriptor")
    est = RTMPose(marker_model)  # OpenCV 5: no HOG; the whole image is one person's box
    assert isinstance(est.detector, WholeImage)
    np.testing.assert_allclose(
        est.detector.detect(np.zeros((720, 1280, 3), np.uint8)), [[0, 0, 1280, 720, 1]]
    )


def test_missing_or_bad_model_files_are_one_sentence(monkeypatch, tmp_path, kinect_dir):
    from capture.source import open_source

    monkeypatch.delenv("XMKD_POSE_MODEL", raising=False)
    monkeypatch.delenv("XMKD_DET_MODEL", raising=False)
    mkv = kinect_dir / MKV
    with pytest.raises(XmkdError) as err:
        open_source(f"mkv:{mkv}?skeleton=lifted")
    msg = str(err.value)
    assert "pose_model=FILE" in msg and "XMKD_POSE_MODEL" in msg and "onnx_sdk" in msg
    assert "\n" not in msg
    with pytest.raises(XmkdError, match=r"pose_model=.*nope\.onnx: no such file.*onnx_sdk"):
        open_source(f"mkv:{mkv}?skeleton=lifted&pose_model={tmp_path / 'nope.onnx'}")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(FormatError) as err:
        open_source(f"mkv:{mkv}?skeleton=lifted&pose_model={junk}")
    assert str(err.value).startswith(str(junk)) and "\n" not in str(err.value)
    with pytest.raises(XmkdError, match="skeleton='body' must be sdk or lifted"):
        open_source(f"mkv:{mkv}?skeleton=body")


# ---- lifted skeletons on the real Kinect recording -------------------------------------------
def _flat_keypoints(depth: np.ndarray, calib) -> tuple[np.ndarray, np.ndarray]:
    """17 depth pixels on locally flat, valid depth within 40 cm of each other's depth, as a
    body's are -> (their 3D points in the depth camera by the calibration's own unprojection
    (mm), where they appear in the colour image)."""
    rng = np.random.default_rng(3)
    chosen = []
    ref = None
    for u, v in zip(rng.integers(140, 500, 2000), rng.integers(120, 460, 2000), strict=True):
        win = depth[v - 6 : v + 7, u - 6 : u + 7].astype(float)
        if (win > 0).all() and np.ptp(win) < 30:
            ref = float(depth[v, u]) if ref is None else ref
            if abs(float(depth[v, u]) - ref) < 400:
                chosen.append((u, v))
        if len(chosen) == 17:
            break
    uv_d = np.array(chosen, dtype=np.float64)
    z = depth[uv_d[:, 1].astype(int), uv_d[:, 0].astype(int)].astype(np.float64)
    truth, valid = unproject_camera(calib.depth, uv_d, z)
    uv_c, ok = calib.color.project(truth)
    assert valid.all() and ok.all()
    return truth, uv_c


class _KnownKeypoints:
    """A 2D estimator returning given pixels (one person) after ``delay`` seconds."""

    name = "known"
    layout = sk.COCO17

    def __init__(self, keypoints, delay: float = 0.0):
        self.keypoints = np.asarray(keypoints, dtype=np.float64)
        self.delay = delay
        self.calls = 0

    def estimate2d(self, image):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        kp = self.keypoints
        return [Person2D(kp, np.ones(len(kp)), np.r_[kp.min(0), kp.max(0)])]

    def close(self):
        pass


def _measured_ntu_joints() -> dict[int, int]:
    """NTU joint index -> the one COCO keypoint it is measured from."""
    m = sk.COCO17.matrix
    return {i: int(np.argmax(m[i])) for i in range(25) if not sk.COCO17.derived[i]}


def test_lifted_mkv_bodies_match_the_calibrations_unprojection(kinect_dir):
    from capture.mkv import MKVSource

    plain = MKVSource(kinect_dir / MKV, bodies=False, mirror=False)
    with plain:
        raw = next(iter(plain))
    truth, uv_c = _flat_keypoints(raw.depth, plain.calibration)
    est = _KnownKeypoints(uv_c)
    src = MKVSource(kinect_dir / MKV, pose2d=est)  # mirrored, as recordings are
    with src:
        frames = list(src)
    assert est.calls == len(frames) >= 1
    (body,) = frames[0].bodies
    assert "known poses lifted with depth" in src.description
    ntu_truth = truth * np.array([-1.0, -1.0, 1.0]) / 1000.0  # NTU axes, metres
    errors = []
    for joint, kp in _measured_ntu_joints().items():
        errors.append(np.linalg.norm(body.joints[joint] - ntu_truth[kp]) * 1000)
        assert body.tracking[joint] == sk.TRACKED
        # NTU's colour pixels are mirrored: u' = W - 1 - u
        np.testing.assert_allclose(body.color_px[joint, 0], 1279 - uv_c[kp, 0], atol=0.05)
        np.testing.assert_allclose(body.color_px[joint, 1], uv_c[kp, 1], atol=0.05)
    errors = np.array(errors)
    assert np.median(errors) < 3.0 and errors.max() < 10.0, errors


def test_the_worker_path_and_a_slow_estimator_never_hold_up_a_kinect(monkeypatch, kinect_dir):
    from fakes.k4a import FakeDeviceSpec, install_fake_pyk4a

    from capture.source import open_source

    calibration_raw = (kinect_dir / "azure-kinect-calibration.json").read_text()
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=40)], calibration_raw)
    # the fake depth is 1500 mm (700 mm on the camera's left quarter): keypoints on the wall
    kp = np.column_stack([np.linspace(700, 900, 17), np.linspace(200, 600, 17)])
    est = _KnownKeypoints(kp, delay=0.05)
    src = open_source("kinect:0?skeleton=lifted", pose2d=est)
    frames = []
    start = time.perf_counter()
    with pytest.raises(XmkdError, match="delivered no capture"):  # the fake stops after 40
        with src:
            for frame in src:
                frames.append(frame)
                time.sleep(0.002)  # the consumer's own work per frame
    elapsed = time.perf_counter() - start
    assert len(frames) == 40
    assert src.tracker is None  # no Body Tracking SDK involved
    # 40 estimates would take 2 s; the capture loop handed over what the worker could take
    assert elapsed < 40 * 0.05
    assert 1 <= est.calls < 40
    with_bodies = [f for f in frames if f.bodies]
    assert with_bodies and with_bodies[-1].bodies[0].joints[:, 2].mean() == pytest.approx(
        1.5, abs=0.05
    )
    assert len({b.id for f in with_bodies for b in f.bodies}) == 1  # one stable ID


def test_the_lifted_estimator_marks_untrusted_depth_inferred(kinect_dir):
    from capture.calibration import Calibration

    calib = Calibration.from_file(kinect_dir / "azure-kinect-calibration.json")
    depth = np.full((576, 640), 2000, np.uint16)
    depth[:, 320:] = 0  # no return on the right half of the depth image
    uv = np.column_stack([np.linspace(300, 1000, 17), np.full(17, 360.0)])
    lifted = DepthLiftedEstimator(_KnownKeypoints(uv), calib)
    (body,) = lifted.estimate(RGBD(np.zeros((720, 1280, 3), np.uint8), depth))
    states = body.tracking[list(_measured_ntu_joints())]
    assert (states == sk.TRACKED).any() and (states == sk.INFERRED).any()
    # inferred keypoints took their trusted neighbours' depth: the whole body is ~2 m away
    np.testing.assert_allclose(body.joints[:, 2], 2.0, atol=0.08)


def test_xmkd_record_makes_an_ntu_session_from_the_mkv_with_lifted_skeletons(
    tmp_path, monkeypatch, kinect_dir
):
    from xmkd.cli import main
    from xmkd.ntu import read_skeleton
    from xmkd.recordings import Session

    # fixed SimCC peaks: keypoints spread over the person box the fixed detector reports
    rng = np.random.default_rng(0)
    bins_x = rng.integers(80, 300, 17).tolist()
    bins_y = rng.integers(80, 430, 17).tolist()
    pose = tmp_path / "pose.onnx"
    _export(_FixedPose(bins_x, bins_y), pose, "pose", ["simcc_x", "simcc_y"])
    det = tmp_path / "det.onnx"
    # (1280x720 in 640x640: ratio 0.5) a person box in the middle of the colour image
    _export(
        _FixedDetector([[240, 60, 400, 300, 0.9]], [0]),
        det,
        torch.zeros(1, 3, 640, 640),
        ["dets", "labels"],
    )
    monkeypatch.setenv("XMKD_POSE_MODEL", str(pose))
    out = tmp_path / "rec"
    spec = f"mkv:{kinect_dir / MKV}?skeleton=lifted&det_model={det}"
    args = ["--setup", "1", "--performer", "1", "--no-flow", "--min-free-mb", "1"]
    code = main(["record", "--source", spec, "--out", str(out), "--session", "k", *args])
    assert code == 0
    session = Session.open(out / "k")
    (clip,) = session.clips
    seq = read_skeleton(clip.skeleton)
    assert seq.num_frames >= 1 and (np.asarray(seq.body_counts) == 1).all()
    joints = np.asarray(seq.joints)[0]  # (25, 12) rows of the first body
    assert np.isfinite(joints[:, :3]).all() and (joints[:, 2] > 0.3).all()  # metres ahead
    assert set(joints[:, 11].astype(int)) <= {0, 1, 2}


def test_an_unknown_source_option_is_still_refused(kinect_dir):
    from capture.source import open_source

    with pytest.raises(XmkdError, match="unknown option"):
        open_source(f"mkv:{kinect_dir / MKV}?pose_model=x.onnx")
    assert "capture.pose2d" in sys.modules
