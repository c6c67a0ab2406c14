"""Colour frame with the 2D skeleton drawn over it.

Frames arrive already converted to RGB and reduced to preview size by the worker thread (see
:func:`gui.workers.preview_image`); joint pixel coordinates are in the full-size colour image and
are scaled here by the same factor. :meth:`VideoView.display_width` says how wide an image can
appear, so a producer need not make (and the UI need not convert) more pixels than are shown.
Without a colour frame (e.g. an NTU file with no paired video) the skeleton is drawn on an empty
canvas of the full colour size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui.skeleton_view import BODY_COLOURS, bone_segments

DEFAULT_SIZE = (1920, 1080)  # Kinect v2 / NTU colour size, used when no frame is shown


class VideoView(QWidget):
    """An image item in a y-down view box, plus one bone overlay per body slot."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#202020")
        layout.addWidget(self.graphics)
        self.box = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self.text = pg.TextItem("no video", color="#aaaaaa", anchor=(0.5, 0.5))
        self.box.addItem(self.text)
        self._overlays = []
        for colour in BODY_COLOURS:
            bones = pg.PlotDataItem(pen=pg.mkPen(colour, width=3), connect="pairs")
            joints = pg.ScatterPlotItem(size=6, brush=pg.mkBrush(colour), pen=pg.mkPen("w"))
            bones.setZValue(10)
            joints.setZValue(11)
            self.box.addItem(bones)
            self.box.addItem(joints)
            self._overlays.append((bones, joints))
        self._size: tuple[int, int] | None = None
        self.frames_shown = 0
        self._set_canvas(DEFAULT_SIZE)

    def _set_canvas(self, size: tuple[int, int]) -> None:
        if size != self._size:
            self._size = size
            self.box.setRange(xRange=(0, size[0]), yRange=(0, size[1]), padding=0)
            self.text.setPos(size[0] / 2, size[1] / 2)

    def display_width(self, full_size: tuple[int, int] | None = None) -> int:
        """The widest the image can appear, in device pixels: the view's width, or its height
        times the image's aspect ratio (``full_size`` = width, height) when that is smaller,
        as the view keeps the aspect ratio."""
        width, height = self.graphics.width(), self.graphics.height()
        if full_size is not None and full_size[1] > 0:
            width = min(width, height * full_size[0] / full_size[1])
        return max(1, math.ceil(width * self.devicePixelRatioF()))

    def set_frame(
        self,
        rgb: np.ndarray | None,
        scale: float = 1.0,
        pixels: Sequence[np.ndarray] = (),
        full_size: tuple[int, int] | None = None,
    ) -> None:
        """Show ``rgb`` (H, W, 3 uint8, preview size = full size * ``scale``) or a blank canvas,
        with each body's (25, 2) colour-pixel joints (full-size coordinates) drawn on top."""
        if rgb is not None:
            h, w = rgb.shape[:2]
            self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
            self.image.setVisible(True)
            self.text.setVisible(False)
            self._set_canvas((w, h))
            self.frames_shown += 1
        else:
            self.image.setVisible(False)
            self.text.setVisible(True)
            scale = 1.0
            self._set_canvas(full_size or DEFAULT_SIZE)
        for slot, (bones, joints) in enumerate(self._overlays):
            if slot < len(pixels):
                uv = np.asarray(pixels[slot], dtype=np.float64)[:, :2] * scale
                bx, by = bone_segments(np.pad(uv, ((0, 0), (0, 1))), (0, 1))
                bones.setData(bx, by)
                joints.setData(uv[:, 0], uv[:, 1])
            else:
                bones.setData([], [])
                joints.setData([], [])

    def clear(self, message: str = "no video") -> None:
        self.text.setText(message)
        self.set_frame(None)
