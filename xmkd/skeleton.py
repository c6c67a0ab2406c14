"""Skeleton conventions used everywhere in xmkd: the one joint-layout module.

* The NTU RGB+D (Kinect v2) 25-joint layout: names, 1-based numbers as in the dataset's docs,
  bones, left/right pairs for flipping.
* The ST-GCN graph for NTU exactly as the reference implementation builds it (yysijie/st-gcn
  ``net/utils/graph.py``: layout 'ntu-rgb+d', strategy 'spatial', centre joint 21, max_hop 1,
  normalize_digraph), and the corrected spatial partition as an explicit option.
* Azure Kinect Body Tracking's 32 joints, the name-based mapping to NTU's 25, and the conversion
  of units and axes (Azure: millimetres, +x right, +y down; NTU/Kinect v2: metres, +x to the
  sensor's left, +y up; both +z forward), plus the horizontal mirroring of pixel coordinates that
  makes Azure Kinect pairs look like NTU's (NTU's colour/depth pixels are mirrored).
* The keypoint layouts of RGB pose estimators (COCO-17: RTMPose and most 2D estimators;
  BlazePose-33: MediaPipe Pose) mapped to NTU-25, with which NTU joints are measured (one source
  keypoint) and which derived (spine, neck, head, hands... from several), and NTU's per-joint
  tracking states (2 tracked, 1 inferred, 0 not tracked) for them: derived joints are inferred.

Arrays of joints are indexed 0-based (``NTU_JOINTS[i]`` is NTU joint number ``i + 1``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# --------------------------------------------------------------------------------------------
# NTU RGB+D 25 joints (Kinect v2), in file order. Number = index + 1.
NTU_JOINTS: tuple[str, ...] = (
    "spine_base",  # 1
    "spine_mid",  # 2
    "neck",  # 3
    "head",  # 4
    "shoulder_left",  # 5
    "elbow_left",  # 6
    "wrist_left",  # 7
    "hand_left",  # 8
    "shoulder_right",  # 9
    "elbow_right",  # 10
    "wrist_right",  # 11
    "hand_right",  # 12
    "hip_left",  # 13
    "knee_left",  # 14
    "ankle_left",  # 15
    "foot_left",  # 16
    "hip_right",  # 17
    "knee_right",  # 18
    "ankle_right",  # 19
    "foot_right",  # 20
    "spine_shoulder",  # 21
    "handtip_left",  # 22
    "thumb_left",  # 23
    "handtip_right",  # 24
    "thumb_right",  # 25
)
NUM_JOINTS = 25
NTU_JOINT_NUMBER: dict[str, int] = {name: i + 1 for i, name in enumerate(NTU_JOINTS)}

#: Centre joint of the ST-GCN graph: 21 (spine at shoulders), 1-based.
CENTER_JOINT = 21
#: Joint subtracted to centre a sequence (HCN and pyskl use joint 2, mid spine), 1-based.
ORIGIN_JOINT = 2

#: Bones of the reference ST-GCN 'ntu-rgb+d' layout, 1-based (child, parent) as listed there.
#: Note 22-23-8 and 24-25-12: the reference chains hand tip -> thumb -> hand.
NTU_BONES_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
NTU_BONES: tuple[tuple[int, int], ...] = tuple((i - 1, j - 1) for i, j in NTU_BONES_1BASED)

#: Left/right joint pairs, 1-based, for horizontal flipping.
NTU_LEFT_RIGHT_1BASED: tuple[tuple[int, int], ...] = (
    (5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20), (22, 24), (23, 25),
)  # fmt: skip


def flip_permutation() -> np.ndarray:
    """Index array p with ``joints_flipped = joints[..., p, :]`` swapping left and right."""
    perm = np.arange(NUM_JOINTS)
    for a, b in NTU_LEFT_RIGHT_1BASED:
        perm[a - 1], perm[b - 1] = b - 1, a - 1
    return perm


def flip_horizontally(joints: np.ndarray, x_axis: int = 0) -> np.ndarray:
    """Mirror an NTU skeleton array (..., V=25, C) left-right: negate x and swap sides."""
    out = np.array(joints, copy=True)[..., flip_permutation(), :]
    out[..., x_axis] = -out[..., x_axis]
    return out


# --------------------------------------------------------------------------------------------
# ST-GCN graph
PartitionStrategy = Literal["uniform", "distance", "spatial"]


def hop_distance(num_node: int, edges: list[tuple[int, int]], max_hop: int) -> np.ndarray:
    """Hop distance between nodes, ``inf`` beyond ``max_hop`` (as the reference computes it)."""
    adjacency = np.zeros((num_node, num_node))
    for i, j in edges:
        adjacency[j, i] = 1
        adjacency[i, j] = 1
    dist = np.full((num_node, num_node), np.inf)
    reach = np.stack([np.linalg.matrix_power(adjacency, d) for d in range(max_hop + 1)]) > 0
    for d in range(max_hop, -1, -1):
        dist[reach[d]] = d
    return dist


def normalize_digraph(adjacency: np.ndarray) -> np.ndarray:
    """A . D^-1 with D the column sums (the reference's normalize_digraph)."""
    col_sum = adjacency.sum(axis=0)
    inv = np.zeros_like(col_sum)
    inv[col_sum > 0] = 1.0 / col_sum[col_sum > 0]
    return adjacency @ np.diag(inv)


def stgcn_adjacency(
    strategy: PartitionStrategy = "spatial",
    max_hop: int = 1,
    dilation: int = 1,
    corrected_partition: bool = False,
) -> np.ndarray:
    """The (K, 25, 25) adjacency stack ST-GCN uses for NTU RGB+D.

    By default this is byte-for-byte the reference's: with ``max_hop=1`` the hop distance to the
    centre is ``inf`` for joints more than one hop away, and ``inf == inf`` sends most edges to
    the "root" group (non-zeros per partition 25 / 40 / 8). ``corrected_partition=True`` measures
    each joint's distance to the centre over the whole graph instead, which gives the partition
    the ST-GCN paper describes (25 / 24 / 24: every edge is either centripetal or centrifugal).
    Reference checkpoints were trained with the default.
    """
    edges = [(i, i) for i in range(NUM_JOINTS)] + list(NTU_BONES)
    dist = hop_distance(NUM_JOINTS, edges, max_hop)
    center = CENTER_JOINT - 1
    valid_hop = range(0, max_hop + 1, dilation)
    adjacency = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for hop in valid_hop:
        adjacency[dist == hop] = 1
    norm = normalize_digraph(adjacency)

    if strategy == "uniform":
        return norm[None]
    if strategy == "distance":
        stack = np.zeros((len(valid_hop), NUM_JOINTS, NUM_JOINTS))
        for k, hop in enumerate(valid_hop):
            stack[k][dist == hop] = norm[dist == hop]
        return stack
    if strategy != "spatial":
        raise ValueError(f"unknown partition strategy {strategy!r}")

    to_center = (
        hop_distance(NUM_JOINTS, edges, NUM_JOINTS)[:, center] if corrected_partition
        else dist[:, center]
    )  # fmt: skip
    parts = []
    for hop in valid_hop:
        root = np.zeros((NUM_JOINTS, NUM_JOINTS))
        close = np.zeros((NUM_JOINTS, NUM_JOINTS))
        further = np.zeros((NUM_JOINTS, NUM_JOINTS))
        for i in range(NUM_JOINTS):
            for j in range(NUM_JOINTS):
                if dist[j, i] != hop:
                    continue
                if to_center[j] == to_center[i]:
                    root[j, i] = norm[j, i]
                elif to_center[j] > to_center[i]:
                    close[j, i] = norm[j, i]
                else:
                    further[j, i] = norm[j, i]
        if hop == 0:
            parts.append(root)
        else:
            parts.append(root + close)
            parts.append(further)
    return np.stack(parts)


# --------------------------------------------------------------------------------------------
# Azure Kinect Body Tracking (k4abt) 32 joints, 0-based as in k4abt_joint_id_t.
AZURE_JOINTS: tuple[str, ...] = (
    "pelvis", "spine_navel", "spine_chest", "neck", "clavicle_left", "shoulder_left",
    "elbow_left", "wrist_left", "hand_left", "handtip_left", "thumb_left", "clavicle_right",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right", "handtip_right", "thumb_right",
    "hip_left", "knee_left", "ankle_left", "foot_left", "hip_right", "knee_right", "ankle_right",
    "foot_right", "head", "nose", "eye_left", "ear_left", "eye_right", "ear_right",
)  # fmt: skip
NUM_AZURE_JOINTS = 32

#: For each NTU joint (0-based), the Azure Kinect joint it is taken from (name-based; spine base
#: <- pelvis, mid spine <- spine navel, spine at shoulders <- spine chest, head <- head).
AZURE_TO_NTU: tuple[int, ...] = (
    0, 1, 3, 26, 5, 6, 7, 8, 12, 13, 14, 15, 18, 19, 20, 21, 22, 23, 24, 25, 2, 9, 10, 16, 17,
)  # fmt: skip

#: k4abt confidence levels (NONE, LOW, MEDIUM, HIGH) -> NTU trackingState (0 not tracked,
#: 1 inferred, 2 tracked). LOW means "predicted/occluded", the counterpart of Kinect v2 inferred.
AZURE_CONFIDENCE_TO_NTU_TRACKING: tuple[int, ...] = (0, 1, 2, 2)


def azure_to_ntu_positions(positions_mm: np.ndarray) -> np.ndarray:
    """Azure Kinect camera-space joints (..., 32, 3) in mm -> NTU joints (..., 25, 3) in metres.

    Azure: +x right, +y down, +z forward (depth camera space). Kinect v2/NTU: +x to the sensor's
    left, +y up, +z forward. So NTU = (-x, -y, z) / 1000, a 180 degree rotation about z.
    """
    positions_mm = np.asarray(positions_mm, dtype=np.float64)
    picked = positions_mm[..., AZURE_TO_NTU, :]
    return picked * np.array([-1.0, -1.0, 1.0]) / 1000.0


def ntu_to_azure_positions(joints_m: np.ndarray) -> np.ndarray:
    """NTU joints (..., 3) in metres -> Azure Kinect camera space in mm (inverse axis change)."""
    return np.asarray(joints_m, dtype=np.float64) * np.array([-1.0, -1.0, 1.0]) * 1000.0


def azure_to_ntu_orientations(quat_wxyz: np.ndarray) -> np.ndarray:
    """Azure joint orientations (..., 32, 4) wxyz -> NTU order (..., 25, 4), expressed in NTU's
    camera axes: the basis change is a 180 degree rotation r about z, so q' = r q r^-1, which
    keeps w and z and negates x and y. (k4abt's joint-local axes differ from Kinect v2's; only the
    camera frame is converted.)"""
    q = np.asarray(quat_wxyz, dtype=np.float64)[..., AZURE_TO_NTU, :]
    return q * np.array([1.0, -1.0, -1.0, 1.0])


def mirror_pixels(u: np.ndarray, width: int) -> np.ndarray:
    """Mirror horizontal pixel coordinates (u' = W - 1 - u): Azure images are a camera's-eye
    view, NTU's colour/depth coordinates (and videos) are mirrored."""
    return (width - 1) - np.asarray(u, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# NTU tracking states (Kinect v2 TrackingState), the 12th column of a .skeleton joint row
NOT_TRACKED, INFERRED, TRACKED = 0, 1, 2
TRACKING_STATE_NAMES: dict[int, str] = {
    NOT_TRACKED: "not tracked",
    INFERRED: "inferred",
    TRACKED: "tracked",
}

#: COCO-17 keypoints (RTMPose, ViTPose, YOLO-pose, OpenPose's COCO model), 0-based. "left" is the
#: person's left, as NTU's (Kinect's) "left" is.
COCO_JOINTS: tuple[str, ...] = (
    "nose", "eye_left", "eye_right", "ear_left", "ear_right", "shoulder_left", "shoulder_right",
    "elbow_left", "elbow_right", "wrist_left", "wrist_right", "hip_left", "hip_right",
    "knee_left", "knee_right", "ankle_left", "ankle_right",
)  # fmt: skip

#: BlazePose GHUM 33 landmarks (MediaPipe Pose), 0-based; person's left as above. The pinky,
#: index and thumb landmarks are on the hand (knuckles / finger), foot_index is the toe.
BLAZEPOSE_JOINTS: tuple[str, ...] = (
    "nose", "eye_inner_left", "eye_left", "eye_outer_left", "eye_inner_right", "eye_right",
    "eye_outer_right", "ear_left", "ear_right", "mouth_left", "mouth_right", "shoulder_left",
    "shoulder_right", "elbow_left", "elbow_right", "wrist_left", "wrist_right", "pinky_left",
    "pinky_right", "index_left", "index_right", "thumb_left", "thumb_right", "hip_left",
    "hip_right", "knee_left", "knee_right", "ankle_left", "ankle_right", "heel_left",
    "heel_right", "foot_index_left", "foot_index_right",
)  # fmt: skip

#: A recipe: each NTU joint as a weighted sum of source keypoints ((name, weight), ...); the
#: weights sum to one (a point of the affine span), so the same recipe maps pixels and metres.
Recipe = tuple[tuple[str, float], ...]


def _mid(a: str, b: str) -> Recipe:
    return ((a, 0.5), (b, 0.5))


def _spine(side_a: str, side_b: str, *, up: float) -> Recipe:
    """A point ``up`` of the way from the hip midpoint to the shoulder midpoint."""
    return (
        (f"hip_{side_a}", 0.5 * (1 - up)),
        (f"hip_{side_b}", 0.5 * (1 - up)),
        (f"shoulder_{side_a}", 0.5 * up),
        (f"shoulder_{side_b}", 0.5 * up),
    )


#: Neck: 40 % of the way from the shoulder midpoint to the head (the ears' midpoint). Kinect v2's
#: neck sits about 10 cm above its spine-shoulder joint, the head centre about 25 cm above it.
_NECK_UP = 0.4
#: Kinect v2's hand joint is the palm, about 8 cm past the wrist: along the forearm by 0.3 of its
#: length where no hand keypoint exists (COCO); hand tip 0.75, thumb 0.5 of it.
_HAND, _HANDTIP, _THUMB = 0.3, 0.75, 0.5


def _along(start: str, end: str, t: float) -> Recipe:
    """The point ``end + t * (end - start)``: past ``end`` on the line start -> end."""
    return ((end, 1.0 + t), (start, -t))


def _neck() -> Recipe:
    return (
        ("shoulder_left", 0.5 * (1 - _NECK_UP)),
        ("shoulder_right", 0.5 * (1 - _NECK_UP)),
        ("ear_left", 0.5 * _NECK_UP),
        ("ear_right", 0.5 * _NECK_UP),
    )


def _recipes(hand: dict[str, Recipe], foot: dict[str, Recipe]) -> dict[str, Recipe]:
    """The NTU-25 recipe shared by COCO and BlazePose; hands and feet differ."""
    measured = (
        "shoulder_left", "elbow_left", "wrist_left", "shoulder_right", "elbow_right",
        "wrist_right", "hip_left", "knee_left", "ankle_left", "hip_right", "knee_right",
        "ankle_right",
    )  # fmt: skip
    out: dict[str, Recipe] = {name: ((name, 1.0),) for name in measured}
    out["spine_base"] = _mid("hip_left", "hip_right")
    out["spine_mid"] = _spine("left", "right", up=0.5)
    out["spine_shoulder"] = _mid("shoulder_left", "shoulder_right")
    out["neck"] = _neck()
    out["head"] = _mid("ear_left", "ear_right")
    out.update(hand)
    out.update(foot)
    return out


#: NTU joint name -> recipe over COCO-17 keypoints. Measured (one keypoint): shoulders, elbows,
#: wrists, hips, knees, ankles. Derived: spine base = hip midpoint; spine mid = halfway from the
#: hip midpoint to the shoulder midpoint; spine shoulder = shoulder midpoint; neck = 40 % from the
#: shoulder midpoint to the head; head = ear midpoint; hand / hand tip / thumb = the wrist
#: extended along the forearm by 0.3 / 0.75 / 0.5 of its length (COCO has no hand keypoints);
#: foot = the ankle (COCO has no foot keypoints; Kinect's foot is a few cm in front of it).
COCO_TO_NTU_RECIPE: dict[str, Recipe] = _recipes(
    hand={
        f"{part}_{side}": _along(f"elbow_{side}", f"wrist_{side}", t)
        for side in ("left", "right")
        for part, t in (("hand", _HAND), ("handtip", _HANDTIP), ("thumb", _THUMB))
    },
    foot={f"foot_{side}": ((f"ankle_{side}", 1.0),) for side in ("left", "right")},
)
# the foot duplicates the ankle: a measured keypoint standing in for another joint is derived
_COCO_DERIVED_SINGLE = {"foot_left", "foot_right"}

#: NTU joint name -> recipe over BlazePose-33 landmarks. Measured (one landmark): shoulders,
#: elbows, wrists, hips, knees, ankles, hand tips (index finger), thumbs, feet (foot index, the
#: toe). Derived: spine base, spine mid, spine shoulder, neck and head as for COCO; hand = the
#: mean of wrist, pinky and index (the palm).
BLAZEPOSE_TO_NTU_RECIPE: dict[str, Recipe] = _recipes(
    hand={
        **{
            f"hand_{side}": (
                (f"wrist_{side}", 1 / 3),
                (f"pinky_{side}", 1 / 3),
                (f"index_{side}", 1 / 3),
            )
            for side in ("left", "right")
        },
        **{f"handtip_{side}": ((f"index_{side}", 1.0),) for side in ("left", "right")},
        **{f"thumb_{side}": ((f"thumb_{side}", 1.0),) for side in ("left", "right")},
    },
    foot={f"foot_{side}": ((f"foot_index_{side}", 1.0),) for side in ("left", "right")},
)


class JointLayout:
    """A source keypoint layout and its mapping to NTU-25.

    ``matrix`` (25, K) maps keypoints (..., K, D) to NTU joints (..., 25, D) for any D (pixels or
    metres); ``derived`` (25,) says which NTU joints are combinations rather than one measured
    keypoint (their tracking state is at most inferred)."""

    def __init__(
        self,
        name: str,
        joints: tuple[str, ...],
        recipe: dict[str, Recipe],
        derived_single: frozenset[str] = frozenset(),
    ):
        self.name = name
        self.joints = joints
        self.recipe = {ntu: recipe[ntu] for ntu in NTU_JOINTS}  # KeyError: a missing NTU joint
        index = {j: k for k, j in enumerate(joints)}
        self.matrix = np.zeros((NUM_JOINTS, len(joints)))
        for i, ntu in enumerate(NTU_JOINTS):
            for src, weight in self.recipe[ntu]:
                self.matrix[i, index[src]] += weight
        if not np.allclose(self.matrix.sum(axis=1), 1.0):
            raise ValueError(f"{name}: every NTU joint's weights must sum to one")
        self.derived = np.array(
            [len(self.recipe[n]) > 1 or n in derived_single for n in NTU_JOINTS], dtype=bool
        )

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def describe(self, ntu_joint: str) -> str:
        """How one NTU joint is obtained, e.g. "derived: 0.5 hip_left + 0.5 hip_right"."""
        terms = " + ".join(f"{w:.3g} {j}" for j, w in self.recipe[ntu_joint])
        kind = "derived" if self.derived[NTU_JOINT_NUMBER[ntu_joint] - 1] else "measured"
        return f"{kind}: {terms}"

    def to_ntu(self, points: np.ndarray) -> np.ndarray:
        """Keypoints (..., K, D) -> NTU joints (..., 25, D)."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-2] != self.num_joints:
            raise ValueError(
                f"{self.name} has {self.num_joints} keypoints, got an array of shape {points.shape}"
            )
        return np.einsum("vk,...kd->...vd", self.matrix, points)

    def tracking(self, states: np.ndarray) -> np.ndarray:
        """Per-keypoint NTU states (..., K) in 0/1/2 -> NTU joints' states (..., 25).

        A joint is as trusted as the least trusted keypoint it is made of, and a derived joint
        is at most inferred."""
        states = np.asarray(states, dtype=np.int64)
        uses = self.matrix != 0  # (25, K)
        worst = np.where(uses, states[..., None, :], TRACKED).min(axis=-1)
        return np.where(self.derived, np.minimum(worst, INFERRED), worst)


def scores_to_tracking(
    scores: np.ndarray, tracked: float = 0.5, inferred: float = 0.2
) -> np.ndarray:
    """Estimator confidences or visibilities (...,) in [0, 1] -> NTU states: ``tracked`` and
    above 2, ``inferred`` and above 1, below 0 (NaN counts as not tracked)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-1.0)
    return np.where(scores >= tracked, TRACKED, np.where(scores >= inferred, INFERRED, 0))


COCO17 = JointLayout("COCO-17", COCO_JOINTS, COCO_TO_NTU_RECIPE, frozenset(_COCO_DERIVED_SINGLE))
BLAZEPOSE33 = JointLayout("BlazePose-33", BLAZEPOSE_JOINTS, BLAZEPOSE_TO_NTU_RECIPE)
#: Layouts by name (what an estimator reports it produces).
JOINT_LAYOUTS: dict[str, JointLayout] = {"coco17": COCO17, "blazepose33": BLAZEPOSE33}
