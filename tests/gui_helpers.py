"""Helpers shared by the GUI tests (tests/test_gui_*.py): a tiny real students checkpoint, a
temporary settings store, and an event-loop stall meter."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QTimer

#: NTU-60-sized class names for the tiny checkpoint (the model is untrained; the tests check
#: the plumbing, not the accuracy).
CLASS_NAMES = [f"action {i:02d}" for i in range(1, 61)]


def tiny_checkpoint(path: Path, arch: str = "stgcn") -> Path:
    """A real (random-weight) students checkpoint small enough for CPU tests: two narrow
    ST-GCN students with a 32-frame resampled window."""
    import torch

    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    spec = default_input_spec(arch, window=32, fit="resize")
    kwargs = {"width": 0.125}
    models = [(arch, kwargs, build_student(arch, len(CLASS_NAMES), **kwargs)) for _ in range(2)]
    save_checkpoint(path, make_checkpoint("students", models, CLASS_NAMES, spec))
    return path


class StallMeter:
    """Measures the longest gap between ticks of a fast QTimer: how long the UI thread was
    unable to process events (a blocked UI thread delays every timer)."""

    def __init__(self, interval_ms: int = 5):
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.clock = QElapsedTimer()
        self.longest_ms = 0.0
        self.ticks = 0
        self._last = None

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        if self._last is not None:
            self.longest_ms = max(self.longest_ms, now - self._last)
        self._last = now
        self.ticks += 1

    def start(self) -> StallMeter:
        self.clock.start()
        self._last = None
        self.longest_ms = 0.0
        self.timer.start()
        return self

    def stop(self) -> float:
        self.timer.stop()
        return self.longest_ms


def wait_until(qtbot, condition, timeout_s: float = 10.0, message: str = "") -> None:
    """qtbot.waitUntil with a message that says what was waited for."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {message}")
        qtbot.wait(20)
