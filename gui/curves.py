"""Live training curves: losses, teacher agreement and validation accuracy against epoch."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


class Curves(QWidget):
    """Three stacked plots; ``add(plot, series, x, y)`` appends a point to a named series."""

    PLOTS = ("loss", "teacher agreement", "validation accuracy")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        layout.addWidget(self.graphics)
        self.plots: dict[str, pg.PlotItem] = {}
        for row, name in enumerate(self.PLOTS):
            plot = self.graphics.addPlot(row=row, col=0)
            plot.setTitle(name, color="#333", size="9pt")
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
            plot.setLabel("bottom", "epoch")
            plot.setMenuEnabled(False)
            if name != "loss":
                plot.setYRange(0, 1, padding=0.02)
            self.plots[name] = plot
        self.data: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._items: dict[tuple[str, str], pg.PlotDataItem] = {}

    def add(self, plot: str, series: str, x: float, y: float) -> None:
        key = (plot, series)
        if key not in self._items:
            colour = _PALETTE[sum(1 for k in self._items if k[0] == plot) % len(_PALETTE)]
            item = self.plots[plot].plot(
                [],
                [],
                name=series,
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=4,
                symbolBrush=colour,
                symbolPen=None,
            )
            self._items[key] = item
            self.data[key] = ([], [])
        xs, ys = self.data[key]
        xs.append(float(x))
        ys.append(float(y))
        self._items[key].setData(xs, ys)

    def clear(self) -> None:
        for plot in self.plots.values():
            for item in list(self._items.values()):
                if item.getViewBox() is plot.getViewBox():
                    plot.removeItem(item)
            if plot.legend is not None:
                plot.legend.clear()
        self._items.clear()
        self.data.clear()
