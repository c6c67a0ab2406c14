"""Confusion-matrix plot (rows: ground truth, columns: prediction), row-normalised colours with
the raw counts written in the cells when the matrix is small enough to read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget


class ConfusionView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.setLabel("left", "ground truth (action)")
        self.plot.setLabel("bottom", "prediction (action)")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getAxis("left").setWidth(40)
        layout.addWidget(self.plot)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.plot.addItem(self.image)
        self._texts: list[pg.TextItem] = []
        self.matrix: np.ndarray | None = None

    def set_matrix(self, matrix: np.ndarray, labels: Sequence[str]) -> None:
        """Show a (C, C) count matrix; ``labels`` name the classes along both axes."""
        matrix = np.asarray(matrix, dtype=np.float64)
        self.matrix = matrix
        rows = matrix.sum(axis=1, keepdims=True)
        normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        self.image.setImage(normalised, autoLevels=False, levels=(0, 1))
        for text in self._texts:
            self.plot.removeItem(text)
        self._texts = []
        n = len(matrix)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        colour = "k" if normalised[i, j] > 0.6 else "w"
                        text = pg.TextItem(f"{int(matrix[i, j])}", color=colour, anchor=(0.5, 0.5))
                        text.setPos(j + 0.5, i + 0.5)
                        self.plot.addItem(text)
                        self._texts.append(text)
        ticks = [(i + 0.5, str(label)[:14]) for i, label in enumerate(labels)]
        if n > 20:
            ticks = ticks[:: max(1, n // 20)]
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTicks([ticks])
        self.plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
