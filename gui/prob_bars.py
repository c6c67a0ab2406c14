"""Top-k class probability bars: one labelled horizontal bar per class, best first."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget


class ProbBars(QWidget):
    """Paints ``k`` bars (label, probability in [0, 1]); the first bar is highlighted."""

    def __init__(self, k: int = 5, parent: QWidget | None = None):
        super().__init__(parent)
        self.k = k
        self.items: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(24 * k + 8)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(320, 28 * self.k + 8)

    def set_probabilities(self, items: Sequence[tuple[str, float]]) -> None:
        """Show the given (label, probability) pairs, sorted by probability, at most k."""
        ranked = sorted(((str(n), float(p)) for n, p in items), key=lambda t: -t[1])
        self.items = ranked[: self.k]
        self.update()

    def clear(self) -> None:
        self.items = []
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor("#fafafa"))
        row = max(18.0, (h - 8) / self.k)
        label_w = min(0.45 * w, 220.0)
        bar_w = w - label_w - 60
        metrics = painter.fontMetrics()
        if not self.items:
            painter.setPen(QColor("#888"))
            painter.drawText(QRectF(0, 0, w, h), Qt.AlignmentFlag.AlignCenter, "no prediction yet")
            painter.end()
            return
        for i, (label, p) in enumerate(self.items):
            y = 4 + i * row
            text = metrics.elidedText(label, Qt.TextElideMode.ElideRight, int(label_w - 8))
            painter.setPen(QColor("#222"))
            painter.drawText(
                QRectF(4, y, label_w - 8, row - 4),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                text,
            )
            painter.fillRect(QRectF(label_w, y + 2, bar_w, row - 8), QColor("#e6e6e6"))
            colour = QColor("#2b7bb9") if i == 0 else QColor("#8fb8d8")
            painter.fillRect(QRectF(label_w, y + 2, bar_w * max(0.0, min(1.0, p)), row - 8), colour)
            painter.setPen(QColor("#222"))
            painter.drawText(
                QRectF(label_w + bar_w + 4, y, 56, row - 4),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"{100 * p:.1f}%",
            )
        painter.end()
