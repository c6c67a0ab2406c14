"""Record tab, the form: which sensor settings a source kind takes."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui.record_tab import RecordTab  # noqa: E402
from gui.source_picker import KINDS  # noqa: E402


@pytest.fixture
def tab(qtbot, tmp_path):
    tab = RecordTab()
    qtbot.addWidget(tab)
    tab.session_dir.setText(str(tmp_path / "session"))
    yield tab
    tab.shutdown()


def _choose(tab: RecordTab, key: str) -> None:
    tab.picker.kind.setCurrentText(next(text for text, k in KINDS.items() if k == key))


def test_sensor_settings_are_editable_only_for_the_sources_that_take_them(tab):
    """Depth mode only for a Kinect device; colour resolution and fps for a Kinect device and
    the synthetic source (its render size and rate); none for files, which play as they were
    recorded (they all stayed editable, silently ignored)."""
    expected = {
        "kinect": (True, True, True),
        "synthetic": (True, False, True),
        "mkv": (False, False, False),
        "ntu": (False, False, False),
    }
    for key in ("synthetic", "mkv", "ntu", "kinect", "synthetic"):
        _choose(tab, key)
        state = (tab.color_res.isEnabled(), tab.depth_mode.isEnabled(), tab.fps.isEnabled())
        assert state == expected[key], key
        options = tab.source_options()
        assert ("depth" in options) == expected[key][1]  # the form shows what the spec uses
        assert ("fps" in options) == expected[key][2]
    _choose(tab, "ntu")
    assert "the file's own" in tab.fps.toolTip()
