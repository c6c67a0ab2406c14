"""``xmkd record``: record NTU-compatible (video, skeleton) clips from sensors, video files or test
sources."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from xmkd.commands import _args as A

DESCRIPTION = """\
Record unlabeled paired data into a session of the recordings layout (recordings/README.md):
each clip is an NTU-named pair SsssCcccPpppRrrrA000 (.skeleton + _rgb.avi + timestamps + optical
flow). Several --source options record in parallel under one session, one NTU camera id each.

sources (options follow "?", e.g. "synthetic?width=1280&height=720&fps=30"):
{sources}

  e.g. --source video:clip.avi (any video of people -> NTU pairs), --source webcam:0,
  --source "orbbec:0?pose_model=rtmpose.onnx", --source "mkv:take.mkv?skeleton=lifted"
  A source whose estimator cannot load (MediaPipe not installed, no RTMPose model file, no SDK)
  is refused with one sentence before anything is recorded. Live cameras run the estimator off
  the capture thread (frames it has no time for carry its latest estimate); files are estimated
  frame by frame and recorded as fast as that goes, with none lost.

clip modes:
  --takes               press Enter to start a take, Enter again to stop it, q + Enter to quit
  --continuous          cut the stream into --clip-seconds windows every --stride seconds
                        (the default mode)
  --by-presence         a clip per appearance of a body (ends after --gap seconds without one,
                        at most --clip-seconds long, shorter than --min-seconds is dropped)

Crash safety: frames reach the disk in half-second chunks under <session>/partial/; after a crash
or kill, `xmkd recover SESSION` turns them into clips (at most the last second is lost). The
recording stops cleanly when free disk space falls below --min-free-mb.

Ctrl+C and SIGTERM stop the recording gracefully (the open clips are finished and the summary
printed). Exit status: 0 when the sources ended or --seconds was reached, 130 after Ctrl+C, 143
after SIGTERM, 1 when a full disk or a failing device stopped the recording early.
"""


#: NTU sample names give setup, camera, performer and replication three digits each
NTU_NUMBER = A.int_range(1, 999, "NTU names give it three digits")
SECONDS = A.float_range(0.0, 3600.0, lo_open=True, why="seconds, at most an hour per clip")
JPEG_QUALITY = A.int_range(1, 100, "OpenCV's JPEG quality scale")


def register(subparsers: argparse._SubParsersAction) -> None:
    from capture.registry import sources_help

    p = subparsers.add_parser(
        "record",
        help="record NTU-named (video, skeleton) clips from cameras, video files or test sources",
        description=DESCRIPTION.format(sources=sources_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--source",
        action="append",
        type=A.source_spec,
        required=True,
        help="a source (repeat for several devices), see above",
    )
    p.add_argument(
        "--out",
        type=A.out_dir,
        default="recordings",
        help="recordings folder (default recordings/)",
    )
    p.add_argument(
        "--session",
        type=A.folder_name,
        default=None,
        help="session folder name inside --out (default: the date and time); an "
        "existing session is continued",
    )
    p.add_argument("--setup", type=NTU_NUMBER, required=True, help="NTU setup number S (1..999)")
    p.add_argument("--performer", type=NTU_NUMBER, required=True, help="NTU performer number P")
    p.add_argument(
        "--replication",
        type=NTU_NUMBER,
        default=1,
        help="first replication number R; each clip counts up (default 1)",
    )
    p.add_argument(
        "--camera",
        type=NTU_NUMBER,
        default=1,
        help="NTU camera id of the first device; further devices count up",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--takes", dest="mode", action="store_const", const="takes")
    mode.add_argument("--continuous", dest="mode", action="store_const", const="continuous")
    mode.add_argument("--by-presence", dest="mode", action="store_const", const="presence")
    p.add_argument("--clip-seconds", type=SECONDS, default=10.0, help="clip length (default 10)")
    p.add_argument(
        "--stride",
        type=SECONDS,
        default=None,
        help="continuous: seconds between clip starts (default: --clip-seconds)",
    )
    p.add_argument(
        "--min-seconds",
        type=A.nonneg_float,
        default=1.0,
        help="by-presence: shortest clip kept (default 1)",
    )
    p.add_argument(
        "--gap",
        type=A.positive_float,
        default=0.5,
        help="by-presence: seconds without a body that end a clip (default 0.5)",
    )
    p.add_argument(
        "--seconds",
        type=A.positive_float,
        default=None,
        help="stop after this many seconds (default: when the sources end or Ctrl+C)",
    )
    p.add_argument(
        "--no-flow",
        dest="flow",
        action="store_false",
        help="do not compute optical flow live (run `xmkd flow` later)",
    )
    p.add_argument("--flow-method", choices=("dis", "tvl1"), default="dis")
    p.add_argument("--flow-preset", choices=("ultrafast", "fast", "medium"), default="fast")
    p.add_argument(
        "--jpeg-quality", type=JPEG_QUALITY, default=90, help="video JPEG quality (default 90)"
    )
    p.add_argument(
        "--min-free-mb",
        type=A.nonneg_float,
        default=1024.0,
        help="stop recording below this much free disk space (default 1024)",
    )
    p.set_defaults(func=run, mode="continuous")


def run(args: argparse.Namespace) -> int:
    import sys
    import threading
    from datetime import datetime
    from pathlib import Path

    from capture.flow import FlowConfig
    from capture.recorder import RecordConfig, Recorder
    from capture.source import open_sources

    config = RecordConfig(
        setup=args.setup,
        performer=args.performer,
        replication=args.replication,
        mode=args.mode,
        clip_seconds=args.clip_seconds,
        stride_seconds=args.stride,
        presence_min_seconds=args.min_seconds,
        presence_gap_seconds=args.gap,
        max_seconds=args.seconds,
        flow=args.flow,
        flow_config=FlowConfig(method=args.flow_method, preset=args.flow_preset),
        jpeg_quality=args.jpeg_quality,
        min_free_mb=args.min_free_mb,
    )
    sources = []
    camera = args.camera
    for spec in args.source:
        found = open_sources(spec, camera=camera)
        sources += found
        camera += len(found)
    name = args.session or datetime.now().strftime("%Y%m%d-%H%M%S")
    session_dir = Path(args.out) / name
    recorder = Recorder(sources, session_dir, config)
    print(f"recording into {session_dir} ({', '.join(s.description for s in sources)})")
    with _stop_on_signals(recorder):
        recorder.start()
        if config.mode == "takes":
            print("press Enter to start a take, Enter to stop it, q + Enter to quit")

            def keyboard() -> None:
                active = False
                while True:
                    line = sys.stdin.readline()  # returns each line as it comes
                    if not line or line.strip().lower().startswith("q"):
                        break
                    active = not active
                    (recorder.start_take if active else recorder.stop_take)()
                    print("take started" if active else "take stopped")
                recorder.request_stop()

            threading.Thread(target=keyboard, daemon=True).start()
        stats = recorder.wait()
    print(f"{stats['clips']} clip(s) in {session_dir}")
    for cam, dropped in stats["dropped_frames"].items():
        overflow = stats["queue_overflow"][cam]
        print(
            f"camera {cam}: {stats['frames'][cam]} frames, {dropped} dropped by the device"
            f"{f', {overflow} lost to a full recorder queue' if overflow else ''}"
        )
    if stats["stop_reason"]:
        print(stats["stop_reason"], file=sys.stderr if stats["outcome"] != "done" else sys.stdout)
    return EXIT_CODES.get(stats["outcome"], 1)


#: The exit status of `xmkd record` by how the recording ended (capture.recorder.OUTCOMES):
#: 0 when the sources ended or --seconds was reached (or q in takes mode), 130 after Ctrl+C and
#: 143 after SIGTERM (the shell's convention for those signals, with the clips finished and the
#: summary printed), 1 when the disk or a device stopped it early.
EXIT_CODES = {"done": 0, "interrupted": 130, "terminated": 143, "disk": 1, "failed": 1}


@contextlib.contextmanager
def _stop_on_signals(recorder: Any) -> Iterator[None]:
    """While recording, SIGINT (Ctrl+C) and SIGTERM stop the recording gracefully: the open
    clips are finished, the flow worker is ended and the summary printed. A handler only asks
    the recorder to stop (it never raises inside the recorder's code); installed from the main
    thread only, as Python requires."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reasons = {
        signal.SIGINT: ("interrupted (Ctrl+C); clips so far are kept", "interrupted"),
        signal.SIGTERM: ("terminated (SIGTERM); clips so far are kept", "terminated"),
    }

    def handler(signum: int, frame: object) -> None:
        # no print here: the main thread may be inside one (a reentrant write raises)
        recorder.request_stop(*reasons[signal.Signals(signum)])

    previous = {sig: signal.signal(sig, handler) for sig in reasons}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
