"""The source registry: kinds depend on `capture.frames` only, the registry imports them lazily
by name, `capture.source` keeps its names for existing callers, and a new kind is one call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from xmkd.errors import XmkdError

KIND_MODULES = (
    "capture.synthetic",
    "capture.ntu_replay",
    "capture.mkv",
    "capture.kinect",
    "capture.bodytracking",
    "capture.recorder",
    "capture.camera",
    "capture.lifting",
)


def test_source_kinds_import_without_the_registry():
    # A fresh interpreter: importing every kind must not pull in the registry (or its
    # re-export module), so the registry can import kinds without a circle.
    code = (
        "import sys\n"
        f"for name in {KIND_MODULES!r}: __import__(name)\n"
        "print(sorted(m for m in ('capture.source', 'capture.registry') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_the_registry_imports_no_kind_until_one_is_opened():
    code = (
        "import sys\n"
        "import capture.source\n"
        f"print(sorted(m for m in {KIND_MODULES!r} if m in sys.modules))\n"
        "capture.source.open_source('ntu:.')\n"
        "print('capture.ntu_replay' in sys.modules, 'capture.kinect' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split("\n")[:2] == ["[]", "True False"]


def test_capture_source_keeps_every_name_callers_use():
    import capture.frames as frames
    import capture.registry as registry
    import capture.source as source

    for name in ("Body", "Frame", "Source", "Pacer", "DropCounter", "host_clock_ns"):
        assert getattr(source, name) is getattr(frames, name)
    for name in ("open_source", "open_sources", "parse_spec", "SPEC_HELP"):
        assert getattr(source, name) is getattr(registry, name)
    assert source.SPEC_HELP.startswith(
        'a source is "synthetic[:preset]", "ntu:PATH" (a .skeleton file or a folder), '
        '"mkv:PATH" (an Azure Kinect recording), "kinect[:INDEX[,INDEX...]]", "video:FILE"'
    )
    assert source.SPEC_HELP.endswith(
        ' or "webcam[:N]", optionally followed by "?key=value&..." options'
    )


class _CountingSource:
    """A minimal kind defined outside capture/: frames with a growing index."""

    @staticmethod
    def make(arg: str, options: dict[str, str], camera: int, **overrides):
        from capture.frames import Frame, Source, option_num

        frames = option_num(options, "frames", 3)

        class Counting(Source):
            kind = "counting"

            def _open(self) -> None:
                pass

            def _frames(self) -> Iterator[Frame]:
                for i in range(frames):
                    yield Frame(i, np.zeros((2, 2, 3), np.uint8), None, [], i * 33_333, 0)

            @property
            def description(self) -> str:
                return f"counting {arg}"

        return Counting(camera=camera)


def test_a_new_kind_is_one_registration(monkeypatch):
    from capture import registry
    from capture.source import open_source, parse_spec

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    with pytest.raises(XmkdError, match="unknown source"):
        parse_spec("counting:x")
    registry.register_kind(
        registry.SourceKind("counting", f"{__name__}:_CountingSource.make", '"counting:NAME"')
    )
    assert '"counting:NAME"' in registry.spec_help()
    with open_source("counting:x?frames=4", camera=3) as src:
        assert [f.index for f in src] == [0, 1, 2, 3]
        assert src.camera == 3 and src.description == "counting x"
    with pytest.raises(XmkdError, match=r"unknown option\(s\) for source 'counting': fps"):
        open_source("counting:x?fps=3")
    with pytest.raises(ValueError, match="lower-case identifier"):
        registry.register_kind(registry.SourceKind("Bad Name", "x:y", "bad"))


def test_path_kinds_need_a_path_and_the_cli_checks_it_exists(tmp_path):
    import argparse

    from capture.source import parse_spec
    from xmkd.commands import _args

    with pytest.raises(XmkdError, match="needs a path"):
        parse_spec("mkv")
    with pytest.raises(argparse.ArgumentTypeError, match="is not a file"):
        _args.source_spec(f"mkv:{tmp_path}")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        _args.source_spec(f"ntu:{tmp_path / 'none'}")
    assert _args.source_spec(f"ntu:{tmp_path}") == f"ntu:{tmp_path}"
