"""Training progress for people and programs: a tqdm bar, JSON lines, optional TensorBoard.

Every event is one JSON object per line (``{"event": ..., "time": ..., ...}``) appended to
``<run_dir>/progress.jsonl`` and, with ``--progress-json -``, also printed to stdout (the GUI reads
it); the bar then goes to stderr. Events written by the trainers:

``start``  run_dir, config, epochs, steps_per_epoch, samples, k, archs, resumed_from
``step``   epoch, step (global), losses ({"student0": {"sup", "mutual", "total"}, ...}), lr,
           teacher_agreement (fraction of the batch where a student agrees with its target),
           samples_per_s, eta_s
``epoch``  epoch, losses (epoch means), teacher_agreement, val (per student and ensemble
           accuracy), best, samples_per_s, epoch_s, eta_s, checkpoint
``end``    best, best_epoch, checkpoint, elapsed_s
TensorBoard scalars are written under ``<run_dir>/tensorboard`` only when ``tensorboard`` is
importable (the ``xmkd[tensorboard]`` extra); otherwise it is skipped quietly, by design.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # tensors and numpy scalars
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Progress:
    """Writes progress events; silent (no bar, no files) on non-zero DDP ranks."""

    def __init__(
        self,
        run_dir: str | Path | None,
        json_stream: str | None = None,
        enabled: bool = True,
        console: bool = True,
        tensorboard: bool = True,
        filename: str = "progress.jsonl",
    ):
        self.enabled = enabled
        self.console = console and enabled
        self._files: list[TextIO] = []
        self._owned: list[TextIO] = []
        self._tb = None
        self._bar: tqdm | None = None
        self.path: Path | None = None
        if not enabled:
            return
        if run_dir is not None:
            self.path = Path(run_dir) / filename
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self._files.append(fh)
            self._owned.append(fh)
        if json_stream == "-":
            self._files.append(sys.stdout)
        elif json_stream:
            fh = open(json_stream, "a", encoding="utf-8")  # noqa: SIM115
            self._files.append(fh)
            self._owned.append(fh)
        if tensorboard and run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional extra is not installed: no scalars, by design
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    # ------------------------------------------------------------------ events
    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        record = {"event": name, "time": round(time.time(), 3), **_jsonable(fields)}
        if not self.enabled:
            return record
        line = json.dumps(record, separators=(",", ":"))
        for fh in self._files:
            fh.write(line + "\n")
            fh.flush()
        return record

    def scalars(self, values: dict[str, float], step: int) -> None:
        """TensorBoard scalars (flattened names such as ``loss/student0``)."""
        if self._tb is None:
            return
        for key, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self._tb.add_scalar(key, float(value), step)

    def message(self, text: str) -> None:
        """A human line on the console that does not break the bar."""
        if self.console:
            tqdm.write(text, file=sys.stderr)

    # ------------------------------------------------------------------ bar
    def bar(self, total: int, desc: str, initial: int = 0) -> tqdm:
        self.close_bar()
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="batch",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not self.console,
            leave=False,
        )
        return self._bar

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self.close_bar()
        for fh in self._owned:
            fh.close()
        self._owned.clear()
        self._files.clear()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a progress file (a torn last line from a crash is skipped)."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
