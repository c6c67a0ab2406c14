"""Body selection: from a :class:`SkeletonSequence` to the models' (3, T, 25, M) array.

This is THE conversion every part uses (NTU packing, datasets over recordings, replay, live), so a
model sees the same layout wherever its input comes from.
"""

from __future__ import annotations

import numpy as np

from xmkd.ntu.skeleton_file import NUM_JOINTS, SkeletonSequence

__all__ = ["SELECTIONS", "select_bodies", "to_model_array"]

SELECTIONS = ("motion", "first")


def select_bodies(
    seq: SkeletonSequence, max_bodies: int = 2, selection: str = "motion"
) -> np.ndarray:
    """(B,) int64: the model slot (0..max_bodies-1) of every body entry of ``seq``, -1 if dropped.

    See :func:`to_model_array` for the two rules.
    """
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be >= 1, got {max_bodies}")
    frames = seq.body_frames
    index_in_frame = np.arange(seq.num_bodies) - np.repeat(seq.frame_offsets[:-1], seq.body_counts)
    if selection == "first":
        return np.where(index_in_frame < max_bodies, index_in_frame, -1)
    if selection != "motion":
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    slots = np.full(seq.num_bodies, -1, dtype=np.int64)
    if seq.num_bodies == 0:
        return slots
    ids, first_entry, which = np.unique(seq.body_ids, return_index=True, return_inverse=True)
    # One entry per (body, frame): a body ID listed twice in a frame keeps its first listing.
    key = which * (seq.num_frames + 1) + frames
    _, unique_entries = np.unique(key, return_index=True)
    usable = np.zeros(seq.num_bodies, dtype=bool)
    usable[unique_entries] = True
    xyz = seq.joints[:, :, :3]
    motion = np.zeros(ids.size)
    for k in range(ids.size):
        rows = usable & (which == k)
        if rows.sum() > 1:
            motion[k] = xyz[rows].var(axis=0).sum()
    # Most motion first; ties (e.g. single-frame bodies) keep the order of first appearance.
    order = sorted(range(ids.size), key=lambda k: (-motion[k], first_entry[k]))
    kept = sorted(order[:max_bodies], key=lambda k: first_entry[k])
    for slot, k in enumerate(kept):
        slots[usable & (which == k)] = slot
    return slots


def to_model_array(
    seq: SkeletonSequence,
    max_bodies: int = 2,
    max_frames: int | None = None,
    selection: str = "motion",
) -> tuple[np.ndarray, int]:
    """Joint positions in the models' layout: (float32 (3, T, 25, M), number of valid frames).

    Channels are x y z (metres, NTU camera space); M = ``max_bodies``; T = the sequence's frame
    count, or ``max_frames`` when given (longer clips are cropped, shorter ones zero-padded at the
    end). The number of valid frames is ``min(num_frames, T)``. Absent bodies are zeros. No
    centring or normalisation happens here (that is :mod:`xmkd.preprocess`).

    ``selection`` decides which bodies fill the M slots:

    - ``"first"`` - the reference (st-gcn ``tools/ntu_gendata.py``): in every frame the first M
      bodies listed in the file fill slots 0..M-1, without tracking; a body can change slot
      between frames when the listing order or count changes.
    - ``"motion"`` (default, as pyskl's NTU pre-processing) - bodies are tracked by body ID across
      frames; the M IDs with the most motion (sum over joints and axes of the variance of the
      position over the frames the ID is present) are kept, and each keeps one fixed slot for the
      whole clip, slots ordered by first appearance. Spurious short-lived or still detections
      (furniture, reflections) lose to the moving actors. A single-body clip gives the same array
      with both rules.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    length = seq.num_frames if max_frames is None else max_frames
    slots = select_bodies(seq, max_bodies, selection)
    frames = seq.body_frames
    keep = (slots >= 0) & (frames < length)
    out = np.zeros((length, NUM_JOINTS, max_bodies, 3), dtype=np.float32)
    out[frames[keep], :, slots[keep]] = seq.joints[keep, :, :3]
    return np.ascontiguousarray(out.transpose(3, 0, 1, 2)), min(seq.num_frames, length)
