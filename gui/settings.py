"""Persistent GUI settings and window layout (QSettings).

Every widget that the user sets (paths, pickers, spin boxes, check boxes) is saved under a key
``<tab>/<name>`` when the window closes and restored when it opens, together with the main
window's geometry and state. The store is the platform's native one (``QSettings("xmkd",
"xmkd-gui")``) unless a file path is given (tests, ``--settings``, or ``XMKD_GUI_SETTINGS``), in
which case an INI file is used so runs never touch the user's real settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)

ENV_SETTINGS = "XMKD_GUI_SETTINGS"


def open_settings(path: str | Path | None = None) -> QSettings:
    """The settings store: an INI file at ``path`` (or $XMKD_GUI_SETTINGS), else the native one."""
    path = path or os.environ.get(ENV_SETTINGS)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings("xmkd", "xmkd-gui")


def save_widgets(settings: QSettings, group: str, widgets: dict[str, QWidget]) -> None:
    """Store the user-visible value of each widget under ``group/name``."""
    settings.beginGroup(group)
    try:
        for name, widget in widgets.items():
            if isinstance(widget, QComboBox):
                settings.setValue(name, widget.currentText())
            elif isinstance(widget, QLineEdit):
                settings.setValue(name, widget.text())
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                settings.setValue(name, widget.value())
            elif isinstance(widget, QAbstractButton) and widget.isCheckable():
                settings.setValue(name, bool(widget.isChecked()))
    finally:
        settings.endGroup()


def _as_bool(value: object) -> bool:
    # INI files give strings back ("true"/"false"); the native stores give bools.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def restore_widgets(settings: QSettings, group: str, widgets: dict[str, QWidget]) -> None:
    """Set each widget from ``group/name`` when a value was stored; unknown values are ignored."""
    settings.beginGroup(group)
    try:
        for name, widget in widgets.items():
            if not settings.contains(name):
                continue
            value = settings.value(name)
            try:
                if isinstance(widget, QComboBox):
                    index = widget.findText(str(value))
                    if index >= 0:
                        widget.setCurrentIndex(index)
                    elif widget.isEditable():
                        widget.setEditText(str(value))
                elif isinstance(widget, QLineEdit):
                    widget.setText(str(value))
                elif isinstance(widget, QSpinBox):
                    widget.setValue(int(float(value)))
                elif isinstance(widget, QDoubleSpinBox):
                    widget.setValue(float(value))
                elif isinstance(widget, QAbstractButton) and widget.isCheckable():
                    widget.setChecked(_as_bool(value))
            except (TypeError, ValueError):
                # A hand-edited or stale settings file must not stop the app from starting.
                continue
    finally:
        settings.endGroup()


def restore_list(settings: QSettings, key: str) -> list[str]:
    """A list of strings stored with ``settings.setValue(key, [...])`` ([] if none). (An INI
    file gives a one-item list back as a plain string, and an empty one as None.)"""
    value = settings.value(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v]
    return []
