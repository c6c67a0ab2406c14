"""The Distill tab's one-click job: ``xmkd label`` -> ``xmkd distill`` -> ``xmkd export``, one
child process after another, with each stage's state kept in the run folder.

Each stage is a real ``xmkd`` command run through :class:`gui.workers.JsonLinesProcess` (its
JSON-lines progress reaches the tab as signals; Cancel is a SIGINT that lets the command save
its work). The plan and the state of every stage are written to ``RUN_DIR/pipeline.json`` at
every change, so a job cancelled, crashed or left when the window closed can be resumed, also
after the app is restarted:

``label``    ``xmkd label ... --out RUN_DIR/labels.pt`` is resumable by itself (the clips already
             in the cache are skipped), so it is run again with the same arguments;
``distill``  gets ``--resume`` when ``RUN_DIR/last.pt`` exists (it is written every epoch);
``export``   is cheap and simply runs again, on the run's best checkpoint (else its last).

State file (JSON): ``format`` ``"xmkd-gui-pipeline"``, ``version`` 1, ``stages``: a list of
``{"name", "args", "status", "message"}`` in running order, where ``args`` are the command's
arguments after ``xmkd`` (for ``export``: its options, the checkpoint is chosen when it starts)
and ``status`` one of :data:`STATUSES`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from gui.workers import JsonLinesProcess, xmkd_command
from xmkd.errors import XmkdError

STATE_FILE = "pipeline.json"
FORMAT = "xmkd-gui-pipeline"
VERSION = 1
#: The stages in running order.
STAGES = ("label", "distill", "export")
#: pending: not started; running: started and not seen ending (a crash or a killed window
#: leaves it so: resumable); done; cancelled; failed; skipped: not part of this job.
STATUSES = ("pending", "running", "done", "cancelled", "failed", "skipped")
#: The label cache the label stage writes in the run folder.
LABELS_FILE = "labels.pt"


def labels_path(run_dir: str | Path) -> Path:
    """Where the label stage writes the teacher's label cache."""
    return Path(run_dir) / LABELS_FILE


def export_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint to export: the run's best (by its validation), else its last."""
    best = Path(run_dir) / "best.pt"
    return best if best.is_file() else Path(run_dir) / "last.pt"


def export_target(checkpoint: str | Path) -> Path:
    """The ONNX model ``xmkd export CHECKPOINT`` writes (beside the checkpoint)."""
    return Path(checkpoint).with_suffix(".onnx")


@dataclass
class Stage:
    """One stage of the job: its ``xmkd`` arguments and where it stands."""

    name: str
    args: list[str]
    status: str = "pending"
    message: str = ""

    def finished(self) -> bool:
        return self.status in ("done", "skipped")


@dataclass
class PipelineState:
    """The job of one run folder: its stages in running order (see the module docstring)."""

    run_dir: Path
    stages: list[Stage] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / STATE_FILE

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def next_stage(self) -> Stage | None:
        """The first stage not done (None when the job is complete)."""
        return next((s for s in self.stages if not s.finished()), None)

    def complete(self) -> bool:
        return self.next_stage() is None

    def save(self) -> Path:
        """Write the state file atomically (a crash mid-write keeps the previous state)."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "version": VERSION,
            "stages": [asdict(s) for s in self.stages],
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> PipelineState | None:
        """The state stored in ``run_dir`` (None when there is none); a file that is not one
        is an XmkdError naming it."""
        path = Path(run_dir) / STATE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"no format '{FORMAT}'")
            if int(data.get("version", 0)) > VERSION:
                raise ValueError(f"version {data['version']} is newer than this app's")
            stages = []
            for item in data["stages"]:
                status = str(item.get("status", "pending"))
                if item["name"] not in STAGES or status not in STATUSES:
                    raise ValueError(f"unknown stage or status in {item}")
                args = [str(a) for a in item["args"]]
                stages.append(Stage(item["name"], args, status, str(item.get("message", ""))))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise XmkdError(f"{path}: is not a pipeline state file ({exc})") from exc
        return cls(Path(run_dir), stages)


def stage_command(stage: Stage, run_dir: str | Path) -> list[str]:
    """The ``xmkd`` arguments that run (or resume) ``stage`` of the job in ``run_dir``."""
    args = list(stage.args)
    if stage.name == "distill":
        if (Path(run_dir) / "last.pt").is_file() and "--resume" not in args:
            args.append("--resume")
        return args
    if stage.name == "export":
        return ["export", str(export_checkpoint(run_dir)), *args]
    return args


class Pipeline(QObject):
    """Runs the stages of a :class:`PipelineState` one after another in child processes.

    Signals (all on the UI thread): ``stage_started(name, args)`` before each child starts,
    ``stage_finished(name, status, message)`` when it ends (status ``done``, ``cancelled`` or
    ``failed``; message empty or one sentence), ``finished(ok, message)`` when the job ends:
    every stage done, or the first stage that did not end well. The children's JSON events come
    from :attr:`job` (``job.event``), their other output from ``job.output``.
    """

    stage_started = Signal(str, list)
    stage_finished = Signal(str, str, str)
    finished = Signal(bool, str)

    def __init__(
        self,
        parent: QObject | None = None,
        program: tuple[str, list[str]] | None = None,
        job: JsonLinesProcess | None = None,
    ):
        super().__init__(parent)
        #: (program, leading args) that run the ``xmkd`` CLI
        self.program = program or xmkd_command()
        self.job = job or JsonLinesProcess(self)
        self.job.finished.connect(self._job_finished)
        self.state: PipelineState | None = None
        self.current: Stage | None = None
        #: the one stage this run is limited to (Export alone), else None
        self.only: str | None = None

    def is_running(self) -> bool:
        """A stage is under way: from just before its child starts (the UI can cancel it at
        once) until the job has moved on."""
        return self.current is not None or self.job.is_running()

    def start(self, state: PipelineState, only: str | None = None) -> None:
        """Run the stages of ``state`` that are not done, in order (``only``: just that one).
        A stage that was running when the app ended is run again (it resumes)."""
        if self.is_running():
            raise XmkdError("a job is already running; cancel it first")
        self.state = state
        self.only = only
        state.save()
        self._next()

    def cancel(self) -> None:
        """Stop the running stage (the command saves what it has; Resume continues it)."""
        self.job.cancel()

    def _next(self) -> None:
        state = self.state
        assert state is not None
        stage = state.stage(self.only) if self.only else state.next_stage()
        if stage is None:
            self.current = None
            state.save()
            self.finished.emit(True, "")
            return
        self.current = stage
        stage.status, stage.message = "running", ""
        state.save()
        args = stage_command(stage, state.run_dir)
        self.stage_started.emit(stage.name, args)
        program, lead = self.program
        self.job.start(program, [*lead, *args], env={"PYTHONUNBUFFERED": "1"})

    @Slot(int, str)
    def _job_finished(self, code: int, message: str) -> None:
        stage, state = self.current, self.state
        if stage is None or state is None:
            return
        if message:
            stage.status = "cancelled" if message == "cancelled" else "failed"
        else:
            stage.status = "done"
        stage.message = message
        state.save()
        self.stage_finished.emit(stage.name, stage.status, message)
        if stage.status != "done":
            self.current = None
            self.finished.emit(False, f"xmkd {stage.name}: {message}")
        elif self.only:
            self.current = None
            self.finished.emit(True, "")
        else:
            self._next()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Window closing: interrupt the running stage (it saves its work) and wait a little;
        a child still running then is killed (its stage stays ``running``: resumable)."""
        if not self.job.is_running():
            return
        self.job.cancel()
        process = self.job.process
        if process is not None:
            process.waitForFinished(wait_ms)
            if self.job.is_running():
                process.kill()
                process.waitForFinished(1000)


def describe(state: PipelineState | None) -> dict[str, str]:
    """Stage name -> status for display ("skipped" for stages the job does not have)."""
    shown = {name: "skipped" for name in STAGES}
    if state is not None:
        for stage in state.stages:
            shown[stage.name] = stage.status
    return shown


def plan(
    run_dir: str | Path,
    distill_args: list[str],
    label_args: list[str] | None = None,
    export_args: list[str] | None = None,
) -> PipelineState:
    """A new job for ``run_dir``: label (when ``label_args``), distill, export (when
    ``export_args``: the export command's options)."""
    stages = []
    if label_args is not None:
        stages.append(Stage("label", list(label_args)))
    stages.append(Stage("distill", list(distill_args)))
    if export_args is not None:
        stages.append(Stage("export", list(export_args)))
    return PipelineState(Path(run_dir), stages)


def summary(event: dict[str, Any]) -> str:
    """One line for the log from the label stage's ``done`` event."""
    parts = [f"{event.get('labeled', '?')} clips labeled"]
    if event.get("no_label"):
        parts.append(f"{event['no_label']} without a label (below the minimum confidence)")
    if event.get("accuracy") is not None:
        parts.append(f"teacher accuracy {100 * float(event['accuracy']):.1f}%")
    return f"labels {event.get('labels', '')}: " + ", ".join(parts)
