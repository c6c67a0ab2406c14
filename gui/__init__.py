"""gui: the xmkd desktop app (PySide6 + pyqtgraph): record, distill, live, replay."""
