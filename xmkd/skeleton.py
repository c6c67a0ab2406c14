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
