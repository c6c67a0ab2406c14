"""gui: the xmkd desktop app (PySide6 + pyqtgraph): record, distill, live, replay.

Importing it applies :func:`gui.qtfix.protect_singletons` (a guard against a reference-count
bug of PySide6 6.12 on Python 3.11) when PySide6 is installed.
"""

try:
    from gui.qtfix import protect_singletons
except ImportError:  # PySide6 missing: `xmkd gui` reports the missing extra itself
    pass
else:
    protect_singletons()
