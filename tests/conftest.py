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


# ---- synthetic data (owner: synth) ------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory):
    """The ``tiny`` synthetic preset (seed 0) generated once per test session: the
    :class:`xmkd.synth.Summary` (session_dir, clips, per_split, seconds, ...)."""
    from xmkd.synth import generate, preset

    return generate(preset("tiny"), tmp_path_factory.mktemp("synth") / "tiny", workers=2)


@pytest.fixture(scope="session")
def tiny_session(tiny_synth) -> Path:
    """Folder of the tiny synthetic session (recordings layout, with flow). Treat it as
    read-only: every test of the run shares it."""
    return tiny_synth.session_dir
