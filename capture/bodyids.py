"""Stable body IDs across frames for estimators that detect people afresh in every frame.

NTU's ``.skeleton`` files give every body a tracking ID that stays the same while the sensor
keeps it; a pose estimator returns an unordered list per frame. `BodyIds` matches each frame's
people to the previous ones greedily by the overlap (IoU) of their keypoint boxes, falling back
to the distance between box centres for people who moved fast (relative to their size), and gives
new people new IDs. A person unseen for more than ``max_missed`` frames is forgotten: coming
back, they get a new ID, as Kinect's tracker does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def keypoint_box(pixels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(x0, y0, x1, y1) of the valid keypoints (K, 2); all keypoints when ``valid`` is None."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if valid is not None and np.any(valid):
        pixels = pixels[np.asarray(valid, dtype=bool)]
    return np.concatenate([pixels.min(axis=0), pixels.max(axis=0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when both are degenerate)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: np.ndarray
    missed: int = 0


class BodyIds:
    """Assigns stable IDs to the people of consecutive frames (one instance per camera)."""

    def __init__(
        self,
        min_iou: float = 0.2,
        max_centre_shift: float = 0.5,
        max_missed: int = 15,
        first_id: int = 1,
    ):
        """``min_iou``: the least box overlap that continues a track; ``max_centre_shift``: else
        the largest centre move, in box diagonals, that still does; ``max_missed``: frames a
        track survives without a match."""
        self.min_iou = min_iou
        self.max_centre_shift = max_centre_shift
        self.max_missed = max_missed
        self._next = int(first_id)
        self._tracks: list[_Track] = []

    def assign(self, boxes: list[np.ndarray]) -> list[int]:
        """IDs for this frame's people (their keypoint boxes), in the order given."""
        boxes = [np.asarray(b, dtype=np.float64) for b in boxes]
        pairs: list[tuple[float, int, int]] = []  # (score, track, person): higher is better
        for t, track in enumerate(self._tracks):
            for p, box in enumerate(boxes):
                iou = box_iou(track.box, box)
                if iou >= self.min_iou:
                    pairs.append((1.0 + iou, t, p))
                    continue
                diag = max(float(np.hypot(*(track.box[2:] - track.box[:2]))), 1e-9)
                shift = float(np.hypot(*((track.box[:2] + track.box[2:] - box[:2] - box[2:]) / 2)))
                if shift / diag <= self.max_centre_shift:
                    pairs.append((1.0 - shift / diag, t, p))
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for _, t, p in sorted(pairs, reverse=True):  # greedy: best matches first
            if t in used or ids[p] is not None:
                continue
            used.add(t)
            ids[p] = self._tracks[t].id
            self._tracks[t].box = boxes[p]
            self._tracks[t].missed = 0
        for t, track in enumerate(self._tracks):
            if t not in used:
                track.missed += 1
        self._tracks = [tr for tr in self._tracks if tr.missed <= self.max_missed]
        for p, box in enumerate(boxes):
            if ids[p] is None:
                ids[p] = self._next
                self._tracks.append(_Track(self._next, box))
                self._next += 1
        return [int(i) for i in ids if i is not None]
