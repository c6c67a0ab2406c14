"""Helpers shared by the GUI tests (tests/test_gui_*.py): a tiny real students checkpoint, a
temporary settings store, and an event-loop stall meter."""

from __future__ import annotations

import gc
import os
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
        self.longest_cpu_ms = 0.0
        self.gaps: list[float] = []
        self.ticks = 0
        self._last = None
        self._last_cpu = 0.0
        self.cpu_times_at_start: tuple[float, float] | None = None

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        cpu = time.thread_time() * 1000
        if self._last is not None:
            gap = now - self._last
            self.gaps.append(gap)
            if gap > self.longest_ms:
                # how much of the longest gap the UI thread spent computing (the rest it
                # waited: for the GIL, or for a core on a busy machine)
                self.longest_ms, self.longest_cpu_ms = gap, cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu
        self.ticks += 1

    def start(self) -> StallMeter:
        # What the test process built before (every earlier test's models, arrays, widgets)
        # is not the GUI's: moved out of the collector's reach, a full collection during the
        # measurement costs what the GUI's own objects cost, not the whole suite's heap.
        gc.collect()
        gc.freeze()
        self.clock.start()
        self._last = None
        self.longest_ms = 0.0
        self.cpu_times_at_start = _machine_cpu_times()
        self.timer.start()
        return self

    def stop(self) -> float:
        self.timer.stop()
        gc.unfreeze()
        return self.longest_ms


#: A gap in the event loop that a user sees as the window freezing, whatever else the machine
#: is doing: checked always.
FREEZE_MS = 150.0


def _machine_cpu_times() -> tuple[float, float] | None:
    """(idle, total) clock ticks of all cores since boot, from /proc/stat (None off Linux)."""
    if not os.path.exists("/proc/stat"):
        return None
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait


def machine_had_spare_cpu(meter: StallMeter) -> bool:
    """Whether at least half a core stood idle on average while the meter ran: only then does
    a short wall-clock gap of the heartbeat measure this process rather than the scheduler
    sharing too few cores (read from /proc/stat over the meter's own window, not the load
    average, which lags by a minute)."""
    now = _machine_cpu_times()
    if meter.cpu_times_at_start is None or now is None:
        return False
    idle0, total0 = meter.cpu_times_at_start
    idle1, total1 = now
    cores = os.cpu_count() or 1
    return total1 > total0 and (idle1 - idle0) / (total1 - total0) * cores >= 0.5


def assert_responsive(meter: StallMeter, limit_ms: float) -> None:
    """The UI thread never computed for ``limit_ms`` at a stretch while the job ran, and the
    event loop never froze for ``FREEZE_MS`` (both always checked); no heartbeat gap reached
    ``limit_ms`` (checked when the machine had a spare core; where every core is busy the
    scheduler alone makes gaps that long, even for a thread that only sleeps)."""
    spare = machine_had_spare_cpu(meter)
    print(
        f"longest event-loop stall {meter.longest_ms:.1f} ms (UI thread busy "
        f"{meter.longest_cpu_ms:.1f} ms of it), {meter.ticks} heartbeats, "
        f"{'a' if spare else 'no'} spare core"
    )
    assert meter.ticks > 20
    assert meter.longest_cpu_ms < limit_ms, (
        f"the UI thread computed for {meter.longest_cpu_ms:.1f} ms without returning to the "
        "event loop"
    )
    assert meter.longest_ms < FREEZE_MS, f"the event loop froze for {meter.longest_ms:.1f} ms"
    if spare:
        assert meter.longest_ms < limit_ms, f"the event loop stalled for {meter.longest_ms:.1f} ms"


def wait_until(qtbot, condition, timeout_s: float = 10.0, message: str = "") -> None:
    """qtbot.waitUntil with a message that says what was waited for."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {message}")
        qtbot.wait(20)
