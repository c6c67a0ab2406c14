"""Skeleton conventions: the reference ST-GCN graph, flipping, the Azure Kinect -> NTU mapping."""

import numpy as np

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
