"""Skeleton conventions: the reference ST-GCN graph, flipping, the Azure Kinect -> NTU mapping."""

import numpy as np
import pytest

from xmkd import skeleton as sk


def test_reference_spatial_partition_counts():
    a = sk.stgcn_adjacency()
    assert a.shape == (3, 25, 25)
    assert [int((p != 0).sum()) for p in a] == [25, 40, 8]
    # normalize_digraph: every column of the summed adjacency sums to one
    np.testing.assert_allclose(a.sum(0).sum(0), np.ones(25))


def test_corrected_partition_splits_edges_evenly():
    a = sk.stgcn_adjacency(corrected_partition=True)
    assert [int((p != 0).sum()) for p in a] == [25, 24, 24]
    np.testing.assert_allclose(a.sum(0), sk.stgcn_adjacency().sum(0))


def test_graph_is_connected_tree_with_24_bones():
    assert len(sk.NTU_BONES) == 24
    dist = sk.hop_distance(25, [(i, i) for i in range(25)] + list(sk.NTU_BONES), 25)
    assert np.isfinite(dist).all()


def test_flip_swaps_sides_and_negates_x():
    joints = np.random.default_rng(0).normal(size=(7, 25, 3))
    flipped = sk.flip_horizontally(joints)
    left_shoulder, right_shoulder = 4, 8
    np.testing.assert_allclose(flipped[:, left_shoulder, 0], -joints[:, right_shoulder, 0])
    np.testing.assert_allclose(flipped[:, left_shoulder, 1:], joints[:, right_shoulder, 1:])
    np.testing.assert_allclose(sk.flip_horizontally(flipped), joints)


def test_azure_mapping_names_match():
    for ntu_index, azure_index in enumerate(sk.AZURE_TO_NTU):
        ntu_name, azure_name = sk.NTU_JOINTS[ntu_index], sk.AZURE_JOINTS[azure_index]
        renamed = {"spine_base": "pelvis", "spine_mid": "spine_navel",
                   "spine_shoulder": "spine_chest"}.get(ntu_name, ntu_name)  # fmt: skip
        assert renamed == azure_name


def test_azure_known_pose_maps_to_ntu_axes():
    # A person 2.5 m in front of an Azure Kinect, left hand raised to the person's left.
    # Facing the camera, the person's left is the camera's right: +x in Azure camera space.
    azure = np.zeros((32, 3))
    azure[:, 2] = 2500.0
    azure[0] = (0.0, 100.0, 2500.0)  # pelvis 10 cm below the optical axis (+y is down)
    azure[26] = (0.0, -600.0, 2500.0)  # head 60 cm above
    azure[8] = (400.0, -700.0, 2450.0)  # left hand: right of the camera's view, above
    ntu = sk.azure_to_ntu_positions(azure)
    assert ntu.shape == (25, 3)
    np.testing.assert_allclose(ntu[0], (0.0, -0.1, 2.5))  # spine base below: y < 0 in NTU
    np.testing.assert_allclose(ntu[3], (0.0, 0.6, 2.5))  # head above: y > 0
    # NTU x grows to the sensor's left, so the person's left hand has negative x, as the left
    # shoulder does in every real NTU sample (shared/data/ntu-samples).
    np.testing.assert_allclose(ntu[7], (-0.4, 0.7, 2.45))
    np.testing.assert_allclose(sk.ntu_to_azure_positions(ntu[[0, 3, 7]]), azure[[0, 26, 8]])


def test_mirror_pixels_and_orientation_frame_change():
    np.testing.assert_allclose(sk.mirror_pixels(np.array([0, 1279]), 1280), [1279, 0])
    q = np.tile([0.5, 0.5, 0.5, 0.5], (32, 1))
    out = sk.azure_to_ntu_orientations(q)
    np.testing.assert_allclose(out[0], [0.5, -0.5, -0.5, 0.5])


# ---- RGB pose estimators' layouts (COCO-17, BlazePose-33) -> NTU-25 ---------------------------
def _standing_coco() -> np.ndarray:
    """A person facing the camera in NTU axes (metres; +x to the sensor's left, +y up): the
    person's left side has the smaller x. Arms hang down and forward."""
    pts = {
        "nose": (0.0, 1.62, 2.90), "eye_left": (-0.03, 1.66, 2.92),
        "eye_right": (0.03, 1.66, 2.92), "ear_left": (-0.08, 1.64, 3.0),
        "ear_right": (0.08, 1.64, 3.0), "shoulder_left": (-0.18, 1.42, 3.0),
        "shoulder_right": (0.18, 1.42, 3.0), "elbow_left": (-0.22, 1.14, 2.95),
        "elbow_right": (0.22, 1.14, 2.95), "wrist_left": (-0.24, 0.90, 2.85),
        "wrist_right": (0.24, 0.90, 2.85), "hip_left": (-0.10, 0.92, 3.0),
        "hip_right": (0.10, 0.92, 3.0), "knee_left": (-0.11, 0.50, 2.98),
        "knee_right": (0.11, 0.50, 2.98), "ankle_left": (-0.12, 0.08, 3.0),
        "ankle_right": (0.12, 0.08, 3.0),
    }  # fmt: skip
    return np.array([pts[name] for name in sk.COCO_JOINTS])


def _ntu(joints: np.ndarray, name: str) -> np.ndarray:
    return joints[..., sk.NTU_JOINT_NUMBER[name] - 1, :]


def test_coco17_maps_a_known_pose_to_ntu25():
    coco = _standing_coco()
    c = {name: coco[k] for k, name in enumerate(sk.COCO_JOINTS)}
    ntu = sk.COCO17.to_ntu(coco)
    assert ntu.shape == (25, 3)
    for name in ("shoulder_left", "elbow_right", "wrist_left", "hip_right", "knee_left"):
        np.testing.assert_allclose(_ntu(ntu, name), c[name])  # measured: the keypoint itself
    hip_mid = (c["hip_left"] + c["hip_right"]) / 2
    shoulder_mid = (c["shoulder_left"] + c["shoulder_right"]) / 2
    head = (c["ear_left"] + c["ear_right"]) / 2
    np.testing.assert_allclose(_ntu(ntu, "spine_base"), hip_mid)
    np.testing.assert_allclose(_ntu(ntu, "spine_shoulder"), shoulder_mid)
    np.testing.assert_allclose(_ntu(ntu, "spine_mid"), (hip_mid + shoulder_mid) / 2)
    np.testing.assert_allclose(_ntu(ntu, "head"), head)
    np.testing.assert_allclose(_ntu(ntu, "neck"), shoulder_mid + 0.4 * (head - shoulder_mid))
    forearm = c["wrist_left"] - c["elbow_left"]
    np.testing.assert_allclose(_ntu(ntu, "hand_left"), c["wrist_left"] + 0.3 * forearm)
    np.testing.assert_allclose(_ntu(ntu, "handtip_left"), c["wrist_left"] + 0.75 * forearm)
    np.testing.assert_allclose(_ntu(ntu, "foot_right"), c["ankle_right"])
    # the person's left stays left: NTU's left shoulder has the smaller x, as in NTU's files
    assert _ntu(ntu, "shoulder_left")[0] < _ntu(ntu, "shoulder_right")[0]
    # the spine is a vertical chain upwards, the head on top
    heights = [_ntu(ntu, n)[1] for n in ("spine_base", "spine_mid", "spine_shoulder", "neck")]
    assert heights == sorted(heights) and _ntu(ntu, "head")[1] > heights[-1]


def test_layouts_map_pixels_with_batch_dimensions_like_points():
    coco = _standing_coco()
    pixels = np.stack([coco[:, :2] * 500 + 100, coco[:, :2] * 400 + 7])[None]  # (1, 2, 17, 2)
    mapped = sk.COCO17.to_ntu(pixels)
    assert mapped.shape == (1, 2, 25, 2)
    np.testing.assert_allclose(mapped[0, 0], sk.COCO17.to_ntu(coco)[:, :2] * 500 + 100)
    with pytest.raises(ValueError, match="COCO-17 has 17 keypoints"):
        sk.COCO17.to_ntu(np.zeros((33, 3)))


def test_blazepose33_measures_hands_and_feet_and_derives_the_palm():
    rng = np.random.default_rng(3)
    bp = rng.normal(size=(33, 3))
    b = {name: bp[k] for k, name in enumerate(sk.BLAZEPOSE_JOINTS)}
    ntu = sk.BLAZEPOSE33.to_ntu(bp)
    np.testing.assert_allclose(_ntu(ntu, "handtip_right"), b["index_right"])
    np.testing.assert_allclose(_ntu(ntu, "thumb_left"), b["thumb_left"])
    np.testing.assert_allclose(_ntu(ntu, "foot_left"), b["foot_index_left"])
    np.testing.assert_allclose(
        _ntu(ntu, "hand_left"), (b["wrist_left"] + b["pinky_left"] + b["index_left"]) / 3
    )
    np.testing.assert_allclose(_ntu(ntu, "spine_base"), (b["hip_left"] + b["hip_right"]) / 2)


def test_derived_joints_are_documented_and_at_most_inferred():
    derived = {
        "spine_base", "spine_mid", "neck", "head", "spine_shoulder", "hand_left", "hand_right",
    }  # fmt: skip
    coco_derived = derived | {"handtip_left", "handtip_right", "thumb_left", "thumb_right"}
    coco_derived |= {"foot_left", "foot_right"}
    for layout, expect in ((sk.COCO17, coco_derived), (sk.BLAZEPOSE33, derived)):
        got = {n for n, d in zip(sk.NTU_JOINTS, layout.derived, strict=True) if d}
        assert got == expect, layout.name
        for name in sk.NTU_JOINTS:
            assert layout.describe(name).startswith("derived" if name in expect else "measured")
        # all keypoints tracked: measured joints tracked, derived ones inferred
        states = layout.tracking(np.full(layout.num_joints, sk.TRACKED))
        assert [sk.TRACKING_STATE_NAMES[int(s)] for s in states] == [
            "inferred" if n in expect else "tracked" for n in sk.NTU_JOINTS
        ]
    assert sk.COCO17.describe("spine_base") == "derived: 0.5 hip_left + 0.5 hip_right"


def test_a_joint_is_as_trusted_as_its_least_trusted_keypoint():
    states = np.full((2, 17), sk.TRACKED)
    states[0, sk.COCO_JOINTS.index("wrist_left")] = sk.NOT_TRACKED
    states[1, sk.COCO_JOINTS.index("hip_right")] = sk.INFERRED
    ntu = sk.COCO17.tracking(states)
    n = {name: i for i, name in enumerate(sk.NTU_JOINTS)}
    assert ntu.shape == (2, 25)
    for name in ("wrist_left", "hand_left", "handtip_left", "thumb_left"):
        assert ntu[0, n[name]] == sk.NOT_TRACKED
    assert ntu[0, n["elbow_left"]] == sk.TRACKED and ntu[0, n["wrist_right"]] == sk.TRACKED
    assert ntu[1, n["hip_right"]] == sk.INFERRED and ntu[1, n["spine_base"]] == sk.INFERRED
    assert ntu[1, n["hip_left"]] == sk.TRACKED
    np.testing.assert_array_equal(
        sk.scores_to_tracking(np.array([0.9, 0.5, 0.3, 0.1, np.nan])), [2, 2, 1, 0, 0]
    )
