"""Timeline of predicted labels: coloured segments over the last ``window_s`` seconds, newest at
the right; each label keeps one colour so repeated actions are easy to spot."""

from __future__ import annotations

import colorsys
import zlib

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget


def label_colour(label: str) -> QColor:
    """A stable, distinct-enough colour for a label (hash -> hue)."""
    hue = (zlib.crc32(label.encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.55, 0.9)
    return QColor(int(r * 255), int(g * 255), int(b * 255))


class Timeline(QWidget):
    """Keeps (time, label) changes and paints them as segments; time in seconds, any origin."""

    def __init__(self, window_s: float = 30.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.window_s = window_s
        self.segments: list[list] = []  # [start, end, label]
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(44)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(400, 44)

    def add(self, t: float, label: str) -> None:
        """Record that ``label`` was predicted at time ``t`` (non-decreasing)."""
        if self.segments and self.segments[-1][2] == label:
            self.segments[-1][1] = t
        else:
            if self.segments:
                self.segments[-1][1] = t
            self.segments.append([t, t, label])
        # Forget segments that scrolled out of the window (keep memory bounded).
        horizon = t - self.window_s
        while len(self.segments) > 1 and self.segments[0][1] < horizon:
            self.segments.pop(0)
        self.update()

    def labels(self) -> list[str]:
        return [s[2] for s in self.segments]

    def clear(self) -> None:
        self.segments = []
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor("#f0f0f0"))
        if not self.segments:
            painter.setPen(QColor("#888"))
            painter.drawText(QRectF(0, 0, w, h), Qt.AlignmentFlag.AlignCenter, "timeline")
            painter.end()
            return
        now = self.segments[-1][1]
        start = now - self.window_s
        metrics = painter.fontMetrics()
        for t0, t1, label in self.segments:
            x0 = (max(t0, start) - start) / self.window_s * w
            x1 = max(x0 + 2, (t1 - start) / self.window_s * w)
            rect = QRectF(x0, 4, x1 - x0, h - 8)
            painter.fillRect(rect, label_colour(label))
            if rect.width() > 30:
                painter.setPen(QColor("#111"))
                text = metrics.elidedText(label, Qt.TextElideMode.ElideRight, int(rect.width() - 6))
                painter.drawText(rect.adjusted(3, 0, -3, 0), Qt.AlignmentFlag.AlignVCenter, text)
        painter.end()
