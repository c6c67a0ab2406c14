"""``xmkd recover SESSION``: turn what an interrupted recording left in ``partial/`` into clips.

The recorder appends every clip to ``partial/<name>/`` as complete chunk files (one per half
second); after a crash, ``kill -9`` or power loss those chunks are all that is needed: each
partial clip becomes a normal clip (video, ``.skeleton``, timestamps, flow computed from the
recorded frames when the live flow was incomplete) and is listed in ``session.json`` marked
``"recovered"``.

Recovery never deletes what it could not read. A damaged chunk is skipped, not where the clip
ends: every readable chunk after it is kept (the timestamps show the gap). Unreadable chunks,
torn ``.tmp`` files, stray files and an unusable ``meta.json`` are moved to
``<session>/damaged/<clip>/`` and named in the report; a clip without a usable ``meta.json``
gets its camera from its name and its frame rate from its timestamps. A folder that cannot be
recovered at all is left where it is. Recovery can be interrupted and run again: it writes
nothing in ``partial/`` (``meta.json`` is only read), and a clip's partial folder is removed
only after its files are durable and listed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.flow import FlowConfig
from capture.recorder import LOCK_FILE, finalize_partial
from xmkd.errors import XmkdError


@dataclass
class RecoveryReport:
    """What `recover_session` did: the recovered clip entries, the files set aside (one
    sentence each) and the partial folders left in place (one sentence each)."""

    clips: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every partial clip was recovered whole."""
        return not self.set_aside and not self.left


def recording_pid(session_dir: Path) -> int | None:
    """The pid of a recorder still writing this session, if it is alive."""
    from xmkd.recordings import partial_dir

    lock = partial_dir(session_dir) / LOCK_FILE
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return None
    except PermissionError:
        return pid
    except OSError:  # Windows: no such process
        return None
    return pid


def recover_session(
    session_dir: str | Path,
    flow_config: FlowConfig | None = None,
    log: Callable[[str], None] = print,
) -> RecoveryReport:
    """Finalize every partial clip of a session; see the module's description."""
    from xmkd.recordings import partial_dir, read_session_json

    session_dir = Path(session_dir)
    info = read_session_json(session_dir)  # a clear error when this is not a session
    pid = recording_pid(session_dir)
    if pid is not None and pid != os.getpid():
        raise XmkdError(
            f"{session_dir} is still being recorded by process {pid}; stop it before recovering"
        )
    settings = info.get("settings") if isinstance(info.get("settings"), dict) else {}
    fps = settings.get("fps")
    defaults = {
        "fps": float(fps) if isinstance(fps, (int, float)) and 0 < fps <= 10000 else None,
        "flow": bool(settings.get("flow", False)),
    }
    report = RecoveryReport()
    partial = partial_dir(session_dir)
    folders = sorted(p for p in partial.iterdir() if p.is_dir()) if partial.is_dir() else []
    for directory in folders:
        if directory.is_symlink():
            report.left.append(f"{directory.name}: a link, not a partial clip; left alone")
            log(report.left[-1])
            continue
        warnings_before = len(report.set_aside)
        try:
            entry = finalize_partial(
                directory, session_dir, flow_config, log, True, defaults, report.set_aside
            )
        except (OSError, ValueError, XmkdError) as exc:  # SampleNameError is an XmkdError
            report.left.append(f"{directory.name}: not recovered ({exc}); left in partial/")
            log(report.left[-1])
            continue
        if entry is not None:
            report.clips.append(entry)
            skipped = len(report.set_aside) - warnings_before
            extra = f", {skipped} file(s) set aside" if skipped else ""
            log(f"{entry['name']}: recovered {entry['frames']} frames{extra}")
    if partial.is_dir():
        (partial / LOCK_FILE).unlink(missing_ok=True)
    if not report.clips and not report.left:
        log(f"{session_dir}: nothing to recover")
    return report
