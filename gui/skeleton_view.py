"""Skeleton view: front (x-y) and side (z-y) projections of NTU-25 bodies, plus a 3D view when
OpenGL is available.

Coordinates are NTU/Kinect v2 camera space in metres (+x to the sensor's left, +y up, +z away from
the sensor). The front projection plots +x to the right, so it has the same handedness as the
NTU-style mirrored colour video shown next to it. The view keeps a fixed 2.6 m window and only
re-centres when a body leaves it, so the picture does not jitter with auto-ranging.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QWidget

from xmkd.skeleton import NTU_BONES

#: One colour per body slot (first body blue, second orange, ...).
BODY_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_BONES = np.asarray(NTU_BONES, dtype=np.int64)
_SPAN = 2.6  # metres visible along each axis of a projection


def opengl_available() -> bool:
    """Whether a 3D (OpenGL) view can be created: pyqtgraph.opengl imports and a GL context opens.

    Offscreen and headless platforms usually have no GL; XMKD_GUI_NO_GL=1 forces the 2D views.
    """
    if os.environ.get("XMKD_GUI_NO_GL") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return False
    try:
        import pyqtgraph.opengl  # noqa: F401
        from PySide6.QtGui import QOffscreenSurface, QOpenGLContext
    except ImportError:
        return False
    context = QOpenGLContext()
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.create()
    ok = context.makeCurrent(surface)
    if ok:
        context.doneCurrent()
    return bool(ok)


def bone_segments(joints: np.ndarray, axes: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays of bone end points, pairwise (for ``connect='pairs'``)."""
    ends = joints[_BONES.reshape(-1)]  # (2 * bones, 3): child, parent, child, parent, ...
    return ends[:, axes[0]], ends[:, axes[1]]


#: Pixels of the left axis (tick labels such as "-1.5" and the axis title) and of the bottom axis.
AXIS_WIDTH = 52
AXIS_HEIGHT = 40


class _Projection(pg.PlotWidget):
    """One 2D projection of up to len(BODY_COLOURS) bodies."""

    def __init__(self, title: str, axes: tuple[int, int], labels: tuple[str, str], centre):
        super().__init__()
        self.axes = axes
        self.setBackground("w")
        self.setTitle(title, color="#333", size="9pt")
        self.setLabel("bottom", labels[0], units="m")
        self.setLabel("left", labels[1], units="m")
        # Fixed axis sizes and no SI prefix: with the aspect lock, an axis that sizes itself to
        # its tick labels is a feedback loop. A resize changes the range, the range the ticks
        # ("-2 .. 2" or "-2.0, -1.5, .."), the ticks the axis's width, that width the view's
        # width, and round again: the Replay tab's event loop spun in it, 11 px each way.
        for side in ("bottom", "left"):
            self.getAxis(side).enableAutoSIPrefix(False)
        self.getAxis("left").setWidth(AXIS_WIDTH)
        self.getAxis("bottom").setHeight(AXIS_HEIGHT)
        # No grid: its lines are repainted with every frame and cost more than the skeleton.
        self.setAspectLocked(True)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getPlotItem().setMenuEnabled(False)
        self._centre = np.asarray(centre, dtype=float)
        self._apply_range()
        # Bones only, no joint markers: a scatter item costs more to repaint than all the
        # bones together, and these views repaint at the capture rate.
        self._bones: list[pg.PlotCurveItem] = []
        for colour in BODY_COLOURS:
            bones = pg.PlotCurveItem(pen=pg.mkPen(colour, width=2.5), connect="pairs")
            self.addItem(bones)
            self._bones.append(bones)

    def _apply_range(self) -> None:
        half = _SPAN / 2
        self.setXRange(self._centre[0] - half, self._centre[0] + half, padding=0)
        self.setYRange(self._centre[1] - half, self._centre[1] + half, padding=0)

    def show_bodies(self, bodies: Sequence[np.ndarray]) -> None:
        points = []
        for slot, bones in enumerate(self._bones):
            if slot < len(bodies):
                xyz = bodies[slot]
                bx, by = bone_segments(xyz, self.axes)
                bones.setData(bx, by)
                points.append(xyz[:, self.axes])
            else:
                bones.setData([], [])
        if points:
            # Re-centre only when the bodies leave the inner 70% of the window.
            all_points = np.concatenate(points)
            centre = (all_points.min(axis=0) + all_points.max(axis=0)) / 2
            if np.any(np.abs(centre - self._centre) > 0.35 * _SPAN / 2):
                self._centre = centre
                self._apply_range()


class SkeletonView(QWidget):
    """Front and side projections side by side (and a 3D view when OpenGL works)."""

    def __init__(self, parent: QWidget | None = None, allow_3d: bool = True):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.front = _Projection("front (x-y)", (0, 1), ("x", "y"), centre=(0.0, 0.0))
        self.side = _Projection("side (z-y)", (2, 1), ("z", "y"), centre=(3.0, 0.0))
        layout.addWidget(self.front)
        layout.addWidget(self.side)
        self.view3d = None
        if allow_3d and opengl_available():
            self._make_3d(layout)
        self.body_count = 0

    def _make_3d(self, layout: QHBoxLayout) -> None:
        import pyqtgraph.opengl as gl

        self.view3d = gl.GLViewWidget()
        self.view3d.setCameraPosition(distance=4.0, elevation=10, azimuth=-90)
        self._lines3d = []
        for colour in BODY_COLOURS:
            item = gl.GLLinePlotItem(mode="lines", color=pg.mkColor(colour), width=2)
            self.view3d.addItem(item)
            self._lines3d.append(item)
        layout.addWidget(self.view3d)

    def set_bodies(self, bodies: Sequence[np.ndarray]) -> None:
        """Show bodies, each an (25, 3) array of NTU joints in metres; [] clears the view."""
        bodies = [np.asarray(b, dtype=np.float64)[:, :3] for b in bodies]
        self.body_count = len(bodies)
        self.front.show_bodies(bodies)
        self.side.show_bodies(bodies)
        if self.view3d is not None:
            for slot, item in enumerate(self._lines3d):
                if slot < len(bodies):
                    # GL axes: x right, y forward, z up; centre the person at the origin.
                    xyz = bodies[slot][_BONES.reshape(-1)]
                    pos = np.stack([xyz[:, 0], xyz[:, 2] - 3.0, xyz[:, 1]], axis=1)
                    item.setData(pos=pos)
                else:
                    item.setData(pos=np.zeros((0, 3)))
