"""Guard against a reference-count bug of PySide6 6.12 on Python < 3.12.

Measured here (PySide6 6.12.0, Python 3.11.7): every ``SignalInstance.emit()`` called from Python
returns ``True`` without taking a reference to it, so each emit lowers ``True``'s reference count
by one. After a few thousand emits (seconds of a live view at 30 fps, pyqtgraph emits on every
redraw) the count reaches zero and the interpreter aborts with "Fatal Python error: bool_dealloc".
Python 3.12 made ``True``/``False`` immortal, which hides the bug there.

The guard detects the bug with a probe signal and, only when present on a Python without immortal
objects, raises the reference counts of ``True`` and ``False`` by 2**40: the same thing 3.12 does
for them, so the leak can never reach zero. Nothing else is changed.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_BUMP = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def emit_steals_true() -> bool:
    """Whether ``emit()`` lowers ``True``'s reference count (the PySide6 6.12 bug)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.ping.emit()
    return sys.getrefcount(True) <= before - 8


def protect_bools_from_emit() -> bool:
    """Apply the guard when needed; returns whether it is (now) applied."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or not emit_steals_true():
        return False
    for value in (True, False):
        # ob_refcnt is the first field of every object in release builds of CPython < 3.12.
        ctypes.c_ssize_t.from_address(id(value)).value += _BUMP
    _applied = True
    return True
