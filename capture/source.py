"""The one interface every capture source implements, under the name existing callers import it
by: ``from capture.source import Frame, Body, Source, open_source, ...``.

The types live in `capture.frames` (what source kinds build on) and the spec registry in
`capture.registry` (which imports the kinds lazily by name); this module re-exports both so the
kinds and the registry never import each other. See those modules for the spec strings
(``synthetic[:preset]``, ``ntu:PATH``, ``mkv:PATH``, ``kinect[:INDEX[,INDEX...]]``, ...).
"""

from __future__ import annotations

from capture.frames import (
    DEFAULT_BODY_INFO,
    Body,
    DropCounter,
    Frame,
    Pacer,
    Source,
    bodies_to_sequence,
    count_dropped,
    frames_to_sequence,
    host_clock_ns,
    option_bool,
    option_num,
    sequence_to_bodies,
)
from capture.registry import (
    SPEC_HELP,
    SourceKind,
    open_source,
    open_sources,
    parse_spec,
    register_kind,
    source_kind,
    source_kinds,
    spec_help,
)

__all__ = [
    "DEFAULT_BODY_INFO",
    "SPEC_HELP",
    "Body",
    "DropCounter",
    "Frame",
    "Pacer",
    "Source",
    "SourceKind",
    "bodies_to_sequence",
    "count_dropped",
    "frames_to_sequence",
    "host_clock_ns",
    "open_source",
    "open_sources",
    "option_bool",
    "option_num",
    "parse_spec",
    "register_kind",
    "sequence_to_bodies",
    "source_kind",
    "source_kinds",
    "spec_help",
]
