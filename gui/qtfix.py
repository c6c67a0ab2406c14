"""Guard against a reference-count bug of PySide6 6.12 on Python < 3.12.

Measured here (PySide6 6.12.0, Python 3.11.7): PySide6 methods hand back the singletons ``None``,
``True`` and ``False`` without taking a reference to them (as if they were immortal, which they
are only from Python 3.12 on): every call of a void method (``setText``, ``setValue``,
``processEvents``, ...) lowers ``None``'s reference count by one, and every
``SignalInstance.emit()`` lowers ``True``'s. After some thousands of calls (seconds of a live
view at 30 fps) a count reaches zero and the interpreter aborts with "Fatal Python error:
none_dealloc" (or "bool_dealloc").

The guard detects the bug with probes and, only when it is present on a Python without immortal
objects, raises the reference counts of ``None``, ``True`` and ``False`` by 2**40: what Python
3.12 does for them, so the leak can never reach zero. Nothing else is changed.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_BUMP = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def singleton_leaks() -> dict[str, int]:
    """How much 16 PySide6 calls lower the reference counts of None and True (0: no bug)."""
    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(16):
        probe.setObjectName("probe")  # a void method: returns None
    none_after = sys.getrefcount(None)
    for _ in range(16):
        probe.ping.emit()  # returns True
    true_after = sys.getrefcount(True)
    return {"None": max(0, none_before - none_after), "True": max(0, true_before - true_after)}


def protect_singletons() -> bool:
    """Apply the guard when needed; returns whether it is (now) applied."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12):
        return False
    leaks = singleton_leaks()
    if max(leaks.values()) < 8:
        return False
    for value in (None, True, False):
        # ob_refcnt is the first field of every object in release builds of CPython < 3.12.
        ctypes.c_ssize_t.from_address(id(value)).value += _BUMP
    _applied = True
    return True
