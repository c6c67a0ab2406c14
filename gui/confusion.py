"""Confusion-matrix plot (rows: ground truth, columns: prediction), row-normalised colours with
the raw counts written in the cells when the matrix is small enough to read, and the class
names along both axes (rows on the left axis, columns on the bottom axis written upwards: a
horizontal name would not fit under its column)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: Longest class name written on an axis (longer ones end in "…"; the tooltip has them whole).
NAME_CHARS = 18
#: Above this many classes only every n-th class is named and the cells carry no counts.
READABLE_CLASSES = 20
#: How many names a larger matrix gets along each axis.
NAMED_WHEN_CROWDED = 12
#: Pixels kept for the matrix itself when the names take the rest of the height.
MATRIX_MIN_PX = 150
EMPTY_TEXT = "evaluate a folder to see the confusion matrix"


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


class UpwardLabelAxis(pg.AxisItem):
    """A bottom axis whose names run upwards (bottom to top), ending under their tick, and which
    is as tall as the longest name. (pyqtgraph lays tick labels out horizontally and drops any
    wider than the axis: long names under narrow columns.)"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.names: list[str] = []

    def set_names(self, ticks: Sequence[tuple[float, str]]) -> None:
        self.names = [name for _, name in ticks]
        self.setTicks([[(pos, "") for pos, _ in ticks]])
        metrics = QFontMetrics(self.style.get("tickFont") or self.font())
        longest = max((metrics.horizontalAdvance(name) for name in self.names), default=0)
        # the names, then the axis title ("prediction") below them
        self.setHeight(longest + 32 if longest else None)

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs) -> None:  # noqa: N802 (Qt name)
        super().drawPicture(p, axisSpec, tickSpecs, [])
        if len(tickSpecs) != len(self.names):
            return  # ticks out of view (never with the matrix's own range)
        p.save()
        p.setPen(self.textPen())
        if self.style.get("tickFont") is not None:
            p.setFont(self.style["tickFont"])
        metrics = p.fontMetrics()
        for (_pen, p1, p2), name in zip(tickSpecs, self.names):
            width, height = metrics.horizontalAdvance(name), metrics.height()
            p.save()
            p.translate(p1.x(), max(p1.y(), p2.y()) + 3)
            p.rotate(-90)
            p.drawText(
                QRectF(-width, -height / 2, width, height),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                name,
            )
            p.restore()
        p.restore()


class CountsItem(pg.GraphicsObject):
    """The counts written in the cells, all painted by this one item, in screen pixels (an
    item per cell cost the UI thread 16-27 ms to build for a 40-file evaluation, measured:
    bench/bench_gui_responsiveness.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[int, int, str, bool]] = []  # (row, column, text, on a light cell)
        self.size = 0

    def set_counts(self, matrix: np.ndarray, normalised: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.size = len(matrix)
        rows, cols = np.nonzero(matrix)
        self.cells = [
            (int(i), int(j), str(int(matrix[i, j])), bool(normalised[i, j] > 0.6))
            for i, j in zip(rows, cols)
        ]
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, self.size, self.size)

    def paint(self, p, *_args) -> None:
        if not self.cells:
            return
        to_screen = p.transform()
        p.save()
        p.resetTransform()  # text at its own pixel size, whatever the cells' scale
        pens = {True: QColor("black"), False: QColor("white")}
        for i, j, text, light in self.cells:
            centre = to_screen.map(QPointF(j + 0.5, i + 0.5))
            p.setPen(pens[light])
            p.drawText(
                QRectF(centre.x() - 40, centre.y() - 12, 80, 24),
                int(Qt.AlignmentFlag.AlignCenter),
                text,
            )
        p.restore()


class ConfusionView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(axisItems={"bottom": UpwardLabelAxis("bottom")})
        self.plot.setBackground("w")
        self.plot.invertY(True)
        self.plot.setLabel("left", "ground truth")
        self.plot.setLabel("bottom", "prediction")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        for axis in ("left", "bottom"):
            # class positions, not quantities: never "(x0.001)" on an axis
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        layout.addWidget(self.plot)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.plot.addItem(self.image)
        self.counts = CountsItem()
        self.plot.addItem(self.counts)
        self.matrix: np.ndarray | None = None
        self.labels: list[str] = []
        #: the names written along the left (rows) and bottom (columns) axes
        self.row_names: list[str] = []
        self.column_names: list[str] = []
        self.placeholder = pg.TextItem(EMPTY_TEXT, color="#888", anchor=(0.5, 0.5))
        self.clear()

    def clear(self) -> None:
        """No matrix: empty axes over the unit square and a line saying how to get one."""
        self.matrix = None
        self.labels, self.row_names, self.column_names = [], [], []
        self.image.clear()
        self.counts.set_counts(np.zeros((0, 0)), np.zeros((0, 0)))
        self.plot.getAxis("left").setTicks([[]])
        self.plot.getAxis("left").setWidth(None)
        self.plot.getAxis("bottom").set_names([])
        self.setMinimumHeight(0)
        if self.placeholder.scene() is None:
            self.plot.addItem(self.placeholder)
        self.placeholder.setPos(0.5, 0.5)
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)

    def set_matrix(self, matrix: np.ndarray, labels: Sequence[str]) -> None:
        """Show a (C, C) count matrix; ``labels`` name the classes along both axes."""
        matrix = np.asarray(matrix, dtype=np.float64)
        self.matrix = matrix
        self.labels = [str(label) for label in labels]
        if self.placeholder.scene() is not None:
            self.plot.removeItem(self.placeholder)
        rows = matrix.sum(axis=1, keepdims=True)
        normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        self.image.setImage(normalised, autoLevels=False, levels=(0, 1))
        n = len(matrix)
        readable = n <= READABLE_CLASSES
        self.counts.set_counts(matrix if readable else np.zeros((n, n)), normalised)
        step = 1 if n <= READABLE_CLASSES else -(-n // NAMED_WHEN_CROWDED)
        shown = list(range(0, n, step))
        ticks = [(i + 0.5, short_name(self.labels[i])) for i in shown]
        left = self.plot.getAxis("left")
        left.setTicks([ticks])
        # as wide as the longest name (pyqtgraph drops tick labels wider than the axis)
        metrics = QFontMetrics(left.style.get("tickFont") or left.font())
        widest = max((metrics.horizontalAdvance(name) for _, name in ticks), default=0)
        left.setWidth(widest + 34)  # the names, the tick marks and the axis title
        bottom = self.plot.getAxis("bottom")
        bottom.set_names(ticks)
        # room for the matrix above its upward names: the layout would otherwise clip them
        self.setMinimumHeight(int(bottom.height()) + MATRIX_MIN_PX)
        self.row_names = self.column_names = [name for _, name in ticks]
        self.plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        self.setToolTip("\n".join(f"{i + 1}: {name}" for i, name in enumerate(self.labels)))
