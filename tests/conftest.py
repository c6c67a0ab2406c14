"""Shared test fixtures: the optional ../shared material, NTU .skeleton files generated at test
time, the Azure Kinect assets shipped in tests/data, and the Qt platform.

A fresh clone has no ../shared: tests of the real NTU samples skip there (saying how to get them)
and the same behaviours run on generated files. CI sets XMKD_REQUIRE_SHARED=1 so that missing
shared material fails instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Qt widgets run without a screen in tests (pytest-qt); set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XMKD_SHARED") or REPO_ROOT.parent / "shared")
REQUIRE_SHARED = os.environ.get("XMKD_REQUIRE_SHARED", "") not in ("", "0")
HOW_TO_GET_SHARED = (
    "set XMKD_SHARED to the project's shared folder or put it beside the checkout as ../shared"
)
# Shipped with the repository (pyk4a's MIT-licensed test assets, see tests/data/kinect/NOTICE.md).
KINECT_DATA = REPO_ROOT / "tests" / "data" / "kinect"


def _shared_missing(what: str) -> None:
    """Skip (fresh clone) or fail (CI, XMKD_REQUIRE_SHARED=1) for missing shared material."""
    message = f"{what}: {HOW_TO_GET_SHARED}"
    if REQUIRE_SHARED:
        pytest.fail(f"XMKD_REQUIRE_SHARED is set but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        _shared_missing(f"the shared material is not at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def ntu_samples(shared_dir: Path) -> list[Path]:
    """The real NTU RGB+D .skeleton files (CRLF) in ../shared/data/ntu-samples."""
    files = sorted((shared_dir / "data" / "ntu-samples").glob("*.skeleton"))
    if not files:
        _shared_missing(f"no real NTU .skeleton samples in {shared_dir / 'data' / 'ntu-samples'}")
    return files


@pytest.fixture(scope="session")
def kinect_dir() -> Path:
    """The real Azure Kinect MKV recording and calibration JSON shipped in tests/data/kinect."""
    return KINECT_DATA


# ---- NTU .skeleton files generated at test time ------------------------------------------------
# Same names, frame counts and body counts per frame as the real samples in ../shared (so tests
# written against those hold on these too), with what real files contain: CRLF, 64-bit body ids,
# 7 significant digits and exponents (1.234567E-05), frames with no body, a second person, a third
# spurious body, and a body whose tracking id changes after it was lost.
GENERATED_NTU = {
    # name: (frames, action of the synthetic library, layout)
    "S001C001P001R001A011": (82, 1, "one"),
    "S001C003P008R002A058": (70, 2, "two"),
    "S002C001P003R001A003": (100, 3, "gaps"),
    "S003C001P015R001A034": (71, 4, "crowd"),
    "S004C002P003R001A017": (124, 5, "reacquired"),
}


def _significant(values: np.ndarray, digits: int = 7) -> np.ndarray:
    """Round to ``digits`` significant digits as Kinect v2's text output does."""
    flat = [float(f"{v:.{digits}g}") for v in values.ravel().tolist()]
    return np.array(flat, dtype=np.float64).reshape(values.shape)


def _generated_bodies(frames: int, action: int, subject: int, seed: int):
    """(body_info (T, 9), joints (T, 25, 12), body id) of one synthetic person."""
    from xmkd.synth.generator import ClipJob, SynthConfig, make_clip
    from xmkd.synth.motion import action_library

    cfg = SynthConfig(
        classes=10, frames=frames, width=16, height=16, seed=seed, lost_tracking=0.0,
        spurious_body=0.0, occluder=0.0, rooms=0,
    )  # fmt: skip
    clip = make_clip(ClipJob(subject, 1, 1, action), cfg, action_library(cfg.classes, seed))
    seq = clip.skeleton
    joints = seq.joints.copy()
    # colour pixels of NTU's 1920x1080 video rather than the small synthetic frames
    joints[..., 5] *= 1920 / cfg.width
    joints[..., 6] *= 1080 / cfg.height
    return seq.body_info, _significant(joints), int(seq.body_ids[0])


def generate_ntu_sample(path: Path, frames: int, action: int, layout: str, seed: int = 0) -> Path:
    """Write one realistic NTU ``.skeleton`` file (CRLF) at ``path``; see :data:`GENERATED_NTU`."""
    from xmkd.ntu import SkeletonSequence, write_skeleton

    info_a, joints_a, id_a = _generated_bodies(frames, action, 1, seed)
    info_b, joints_b, id_b = _generated_bodies(frames, action, 2, seed + 1)
    joints_b[..., 0] += 0.9  # the second person stands beside the first
    # a still "body" (a coat on a chair): same pose every frame, inferred joints
    ghost = joints_b[0].copy()
    ghost[:, 0] -= 2.1
    ghost[:, 11] = 1.0
    ghost_info = np.array([0, 0, 0, 0, 0, 0, 0, 0, 2], dtype=np.float64)
    rows: list[list[tuple[int, np.ndarray, np.ndarray]]] = []
    for t in range(frames):
        a = (id_a, info_a[t], joints_a[t])
        b = (id_b, info_b[t], joints_b[t])
        if layout == "one":
            bodies = [a]
        elif layout == "two":
            bodies = [a, b]
        elif layout == "gaps":  # nobody in view at the start and for a moment mid-clip
            bodies = [] if t < 6 or 60 <= t < 64 else [a]
        elif layout == "crowd":  # a second person passes, a spurious third body for a while
            bodies = [a] + ([b] if 20 <= t < 46 else [])
            bodies += [(id_a + 7, ghost_info, ghost)] if 30 <= t < 36 else []
        elif layout == "reacquired":  # tracking lost, then the same person under a new id
            if 50 <= t < 54 or t >= frames - 3:
                bodies = []
            else:
                bodies = [a if t < 50 else (id_a + 1, info_a[t], joints_a[t])]
        else:
            raise ValueError(f"unknown layout {layout!r}")
        rows.append(bodies)
    flat = [body for frame in rows for body in frame]
    joints = np.stack([body[2] for body in flat])
    joints[0, 0, 7:11] = [0.9999999, 1.5e-05, -7.257856e-05, 0.0]  # exponents as in real files
    seq = SkeletonSequence.from_arrays(
        [len(frame) for frame in rows],
        [body[0] for body in flat],
        joints,
        np.stack([body[1] for body in flat]),
    )
    write_skeleton(path, seq)  # CRLF, like the official release
    return path


@pytest.fixture(scope="session")
def generated_ntu_samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """NTU .skeleton files generated at test time (see :data:`GENERATED_NTU`), sorted by name
    like :func:`ntu_samples`. Read-only: every test of the run shares them."""
    folder = tmp_path_factory.mktemp("generated-ntu")
    return [
        generate_ntu_sample(folder / f"{name}.skeleton", frames, action, layout)
        for name, (frames, action, layout) in sorted(GENERATED_NTU.items())
    ]


@pytest.fixture(params=["generated", "real"])
def any_ntu_samples(request: pytest.FixtureRequest) -> list[Path]:
    """Each test runs on the generated files and on the real samples (which skip, saying how to
    get them, where ../shared is absent)."""
    if request.param == "real":
        return request.getfixturevalue("ntu_samples")
    return request.getfixturevalue("generated_ntu_samples")


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
