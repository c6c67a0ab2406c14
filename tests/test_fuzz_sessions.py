"""Fuzzing recovery: seeded corruptions of an interrupted recording's session (truncated,
garbage, flipped, missing, zero-length, duplicated, renamed and torn chunk files; garbage,
missing or lying meta.json and session.json; missing or misplaced folders). Whatever the damage,
``recover_session`` and ``Session.open`` never end in a traceback (only XmkdError, one sentence),
recovery never deletes a file it could not turn into clip data, every file it set aside or
folder it left is named in its report, and a second recovery finds nothing new.

The counts (variants, recovered whole / partly / nothing / refused) are printed and recorded as
a junit property (``pytest -s`` or ``--junitxml`` shows them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from capture.recover import recover_session
from tests.test_capture_recorder import CLIP, make_partial_session
from xmkd.errors import XmkdError
from xmkd.recordings import Session, read_timestamps

SEED = 20240911
VARIANTS = 60
CHUNKS = 4
OTHER = "S001C001P001R002A000"  # a second, intact partial clip beside the damaged one


def _chunks(session: Path, name: str = CLIP) -> list[Path]:
    """The chunk files still regular files (earlier mutations may have replaced some)."""
    found = (session / "partial" / name).glob("chunk_*.npz")
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


def _npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# Each mutation damages the session in one way; ``rng`` picks where and how much.
def truncate(s, rng):
    p = rng.choice(_chunks(s))
    p.write_bytes(p.read_bytes()[: int(rng.integers(1, p.stat().st_size))])


def zero_length(s, rng):
    rng.choice(_chunks(s)).write_bytes(b"")


def garbage(s, rng):
    p = rng.choice(_chunks(s))
    p.write_bytes(rng.bytes(int(rng.integers(1, 5000))))


def flip_bytes(s, rng):
    p = rng.choice(_chunks(s))
    data = bytearray(p.read_bytes())
    for i in rng.integers(0, len(data), int(rng.integers(1, 20))):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))


def delete_chunk(s, rng):
    rng.choice(_chunks(s)).unlink()


def duplicate_chunk(s, rng):  # a chunk copied under the next number (repeats earlier frames)
    p = rng.choice(_chunks(s))
    numbers = [int(q.stem.split("_")[1]) for q in p.parent.glob("chunk_*.npz")]
    shutil.copy(p, p.with_name(f"chunk_{max(numbers) + 1:06d}.npz"))


def copy_beside(s, rng):  # a file manager's copy: not a chunk name
    p = rng.choice(_chunks(s))
    shutil.copy(p, p.with_name(p.stem + " (copy).npz"))


def torn_tmp(s, rng):
    p = rng.choice(_chunks(s))
    p.with_suffix(".tmp").write_bytes(p.read_bytes()[:100])


def chunk_is_a_folder(s, rng):
    p = rng.choice(_chunks(s))
    p.unlink()
    p.mkdir()


def chunk_links_to_dev_zero(s, rng):
    p = rng.choice(_chunks(s))
    p.unlink()
    p.symlink_to("/dev/zero")


def missing_arrays(s, rng):
    rng.choice(_chunks(s)).write_bytes(_npz_bytes(jpeg=np.zeros(3, np.uint8)))


def _arrays(p: Path) -> dict[str, np.ndarray] | None:
    """A chunk's arrays, None when an earlier mutation already damaged it."""
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def lying_shapes(s, rng):  # a valid zip whose arrays disagree with each other
    p = rng.choice(_chunks(s))
    arrays = _arrays(p)
    if arrays is None or "body_counts" not in arrays:
        return
    arrays["body_counts"] = arrays["body_counts"] + 1
    p.write_bytes(_npz_bytes(**arrays))


def pickled_array(s, rng):  # an object array: loading it would unpickle
    p = rng.choice(_chunks(s))
    arrays = _arrays(p)
    if arrays is None or "device_usec" not in arrays:
        return
    arrays["device_usec"] = np.array([{"x": 1}] * len(arrays["device_usec"]), dtype=object)
    buf = __import__("io").BytesIO()
    np.savez(buf, **arrays)  # allow_pickle is on for writing
    p.write_bytes(buf.getvalue())


def meta(s, rng):
    text = rng.choice([b"", b"\x00\xff garbage", b"[1, 2]", b'{"fps": "fast"}', b'{"fps": -1}',
                       b'{"name": "../../escape", "fps": 30}', b'{"fps": 1e308}'])  # fmt: skip
    (s / "partial" / CLIP / "meta.json").write_bytes(text)


def meta_missing(s, rng):
    (s / "partial" / CLIP / "meta.json").unlink()


def session_json(s, rng):
    text = rng.choice([b"", b"{", b"[]", b'{"format": "xmkd-session", "version": 99}',
                       b'{"format": "xmkd-session", "version": 1, "clips": 3}'])  # fmt: skip
    (s / "session.json").write_bytes(text)


def session_json_missing(s, rng):
    (s / "session.json").unlink()


def layout_folders_missing(s, rng):
    for sub in ("rgb", "skeletons", "timestamps", "flow"):
        shutil.rmtree(s / sub, ignore_errors=True)


def stray_folder(s, rng):
    (s / "partial" / "not-a-clip").mkdir()
    (s / "partial" / "not-a-clip" / "notes.txt").write_text("hello")


def clip_folder_is_a_file(s, rng):
    (s / "partial" / "S009C001P001R001A000").write_bytes(b"x")


def partial_missing(s, rng):
    shutil.rmtree(s / "partial")


MUTATIONS = [truncate, zero_length, garbage, flip_bytes, delete_chunk, duplicate_chunk,
             copy_beside, torn_tmp, chunk_is_a_folder, chunk_links_to_dev_zero, missing_arrays,
             lying_shapes, pickled_array, meta, meta_missing, session_json, session_json_missing,
             layout_folders_missing, stray_folder, clip_folder_is_a_file,
             partial_missing]  # fmt: skip


def _digest(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, tuple[Path, str | None]]:
    """Every entry under partial/ (files, links, folders) -> (path, content digest)."""
    partial = root / "partial"
    if not partial.is_dir():
        return {}
    return {p.relative_to(partial).as_posix(): (p, _digest(p)) for p in partial.rglob("*")}


def _chunk_stamps(path: Path) -> np.ndarray | None:
    """The device timestamps of an intact chunk (an independent reader), else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["device_usec"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _all_digests(root: Path) -> set[str]:
    return {d for p in root.rglob("*") if (d := _digest(p)) is not None}


def test_recovery_survives_every_corruption(tmp_path, record_property):
    rng = np.random.default_rng(SEED)
    base = tmp_path / "base"
    make_partial_session(base, chunks=CHUNKS, per_chunk=8)
    make_partial_session(base, chunks=2, per_chunk=8, name=OTHER)
    outcomes: Counter[str] = Counter()
    used: Counter[str] = Counter()
    for variant in range(VARIANTS):
        session = tmp_path / f"v{variant:03d}"
        shutil.copytree(base, session, symlinks=True)
        picks = rng.choice(len(MUTATIONS), size=int(rng.integers(1, 4)), replace=False)
        names = [MUTATIONS[i].__name__ for i in picks]
        for i in picks:
            if (session / "partial" / CLIP).is_dir() and (_chunks(session) or i >= 13):
                MUTATIONS[i](session, rng)
        used.update(names)
        where = f"variant {variant} ({', '.join(names)})"
        before = _snapshot(session)
        stamps = {rel: _chunk_stamps(p) for rel, (p, d) in before.items() if d is not None}

        try:
            Session.open(session)  # the reader: a clear error or a session, never a traceback
        except XmkdError:
            pass
        try:
            report = recover_session(session, log=lambda m: None)
        except XmkdError as exc:
            assert str(exc) and "\n" not in str(exc), where
            assert _snapshot(session) == before, f"{where}: a refusal changed partial/"
            outcomes["refused"] += 1
            continue

        # nothing that could not be read was deleted: every file of partial/ is still in the
        # session (partial/ or damaged/) or was an intact chunk whose frames are in a clip
        after = _all_digests(session)
        clip_stamps = {}
        for clip in Session.open(session).clips:  # the listed clips are consistent
            clip_stamps[clip.name] = set(read_timestamps(clip.timestamps)[0].tolist())
        text = " ".join(report.set_aside + report.left)
        for rel, (_, digest) in before.items():
            if digest is None or digest in after or rel.endswith("meta.json"):
                continue
            clip_name = rel.split("/")[0]
            chunk = stamps.get(rel)
            assert chunk is not None, f"{where}: {rel} was unreadable and is gone"
            assert set(chunk.tolist()) <= clip_stamps.get(clip_name, set()), (
                f"{where}: the frames of {rel} were neither kept nor set aside"
            )
        damaged = session / "damaged"
        for p in damaged.rglob("*") if damaged.is_dir() else []:
            if p.parent.parent == damaged:
                assert p.name.split(".npz")[0].split(".tmp")[0] in text, f"{where}: {p} unnamed"
        for rel, (path, _) in before.items():  # what stays in partial/ is reported as left
            top = rel.split("/")[0]
            if path.exists() and top != "recording.pid" and "/" not in rel and path.is_dir():
                assert top in text, f"{where}: {top} left in partial/ without a word"
        assert recover_session(session, log=lambda m: None).clips == [], f"{where}: not idempotent"
        if not report.clips:
            outcomes["nothing recovered"] += 1
        elif report.complete:
            outcomes["recovered whole"] += 1
        else:
            outcomes["recovered partly"] += 1
    counts = {"variants": VARIANTS, **dict(sorted(outcomes.items()))}
    print(f"\nsession fuzz (seed {SEED}): {json.dumps(counts)}")
    record_property("session_fuzz_counts", json.dumps(counts))
    assert sum(outcomes.values()) == VARIANTS
    # the suite exercised each kind of damage and each kind of outcome
    assert set(used) == {m.__name__ for m in MUTATIONS}, set(MUTATIONS) - set(used)
    assert outcomes["refused"] and outcomes["recovered partly"] and outcomes["recovered whole"]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.__name__)
def test_each_corruption_alone(tmp_path, mutation):
    """Each mutation on its own, so a failure names the damage directly."""
    session = make_partial_session(tmp_path / "s", chunks=CHUNKS, per_chunk=8)
    mutation(session, np.random.default_rng(SEED))
    before = {p.relative_to(session): _digest(p) for p in session.rglob("*")}
    try:
        report = recover_session(session, log=lambda m: None)
    except XmkdError:
        assert {p.relative_to(session): _digest(p) for p in session.rglob("*")} == before
        return
    kept = sum(c["frames"] for c in report.clips)
    intact = [p for p in before if str(p).endswith(".npz") and p.parent.name == CLIP]
    assert kept <= 8 * (CHUNKS + 1) and os.path.isdir(session)
    if mutation in (truncate, zero_length, garbage, delete_chunk, lying_shapes, missing_arrays):
        assert kept >= 8 * (CHUNKS - 1) or not intact  # one chunk lost, the others kept
