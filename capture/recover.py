"""``xmkd recover SESSION``: turn what an interrupted recording left in ``partial/`` into clips.

The recorder appends every clip to ``partial/<name>/`` as complete chunk files (one per second);
after a crash, ``kill -9`` or power loss those chunks are all that is needed: each partial clip
becomes a normal clip (video, ``.skeleton``, timestamps, flow computed from the recorded frames
when the live flow was incomplete) and is listed in ``session.json`` marked ``"recovered"``. A
half-written chunk (``.tmp``) is discarded, so at most the last second before the crash is lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from capture.flow import FlowConfig
from capture.recorder import LOCK_FILE, META_FILE, finalize_partial
from xmkd.errors import XmkdError


def recording_pid(session_dir: Path) -> int | None:
    """The pid of a recorder still writing this session, if it is alive."""
    from xmkd.recordings import partial_dir

    lock = partial_dir(session_dir) / LOCK_FILE
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def recover_session(
    session_dir: str | Path,
    flow_config: FlowConfig | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Finalize every partial clip of a session; returns the recovered clip entries."""
    from xmkd.recordings import partial_dir, read_session_json

    session_dir = Path(session_dir)
    read_session_json(session_dir)  # a clear error when this is not a session
    pid = recording_pid(session_dir)
    if pid is not None and pid != os.getpid():
        raise XmkdError(
            f"{session_dir} is still being recorded by process {pid}; stop it before recovering"
        )
    partial = partial_dir(session_dir)
    entries = []
    for directory in sorted(p for p in partial.glob("*") if p.is_dir()):
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            log(f"{directory.name}: no {META_FILE}, not a partial clip; left alone")
            continue
        meta = json.loads(meta_path.read_text())
        meta["recovered"] = True
        meta_path.write_text(json.dumps(meta, indent=1))
        entry = finalize_partial(directory, session_dir, flow_config, log)
        if entry is not None:
            entries.append(entry)
            log(f"{entry['name']}: recovered {entry['frames']} frames")
    (partial / LOCK_FILE).unlink(missing_ok=True)
    if not entries:
        log(f"{session_dir}: nothing to recover")
    return entries
