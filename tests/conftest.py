"""Shared test fixtures: the read-only ../shared material and the Qt platform."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt widgets run without a screen in tests (pytest-qt); set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XMKD_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared material is missing: expected it at {SHARED} (set XMKD_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def ntu_samples(shared_dir: Path) -> list[Path]:
    """The real NTU RGB+D .skeleton files (CRLF) in ../shared/data/ntu-samples."""
    files = sorted((shared_dir / "data" / "ntu-samples").glob("*.skeleton"))
    assert files, "no .skeleton samples in shared/data/ntu-samples"
    return files


@pytest.fixture(scope="session")
def kinect_dir(shared_dir: Path) -> Path:
    """The real Azure Kinect MKV recording and calibration JSON."""
    return shared_dir / "data" / "kinect"
