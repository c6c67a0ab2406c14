"""NTU RGB+D sample names ``SsssCcccPpppRrrrAaaa``: parsed and built here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xmkd.errors import XmkdError

__all__ = ["SampleName", "SampleNameError"]

_PATTERN = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
# A dataset file: the name, an optional modality (_rgb, _depth, ...) and extensions.
_FILE_PATTERN = re.compile(r"(S\d{3}C\d{3}P\d{3}R\d{3}A\d{3})(?:_[a-z_]+)?(?:\.[A-Za-z0-9.]+)?")


class SampleNameError(XmkdError, ValueError):
    """A string is not an NTU sample name."""


@dataclass(frozen=True, order=True)
class SampleName:
    """``S{setup}C{camera}P{performer}R{replication}A{action}``, each three digits, 1-based.

    ``action`` 0 (``A000``) marks an unlabelled clip (xmkd recordings); its ``label`` is -1.
    """

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    def __post_init__(self) -> None:
        for field in ("setup", "camera", "performer", "replication", "action"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 <= value <= 999:
                raise SampleNameError(
                    f"NTU sample name field {field} must be 0..999, got {value!r}"
                )

    @classmethod
    def parse(cls, name: str) -> SampleName:
        """Parse exactly ``SsssCcccPpppRrrrAaaa`` (e.g. ``S001C002P003R001A004``)."""
        match = _PATTERN.fullmatch(name)
        if match is None:
            raise SampleNameError(
                f"{name!r} is not an NTU sample name: expected SsssCcccPpppRrrrAaaa with three "
                "digits each, e.g. S001C002P003R001A004"
            )
        return cls(*(int(group) for group in match.groups()))

    @classmethod
    def from_path(cls, path: str | Path) -> SampleName:
        """The sample name of a dataset file such as ``.../S001C002P003R001A004.skeleton``,
        ``S001C002P003R001A004_rgb.avi`` or ``S001C002P003R001A004.skeleton.npy``."""
        match = _FILE_PATTERN.fullmatch(Path(path).name)
        if match is None:
            raise SampleNameError(
                f"{str(path)!r} is not named after an NTU sample (SsssCcccPpppRrrrAaaa, "
                "e.g. S001C002P003R001A004.skeleton)"
            )
        return cls.parse(match.group(1))

    @property
    def label(self) -> int:
        """0-based class index: ``action - 1`` (-1 for unlabelled A000)."""
        return self.action - 1

    @property
    def subject(self) -> int:
        """Alias of ``performer`` (the splits speak of subjects)."""
        return self.performer

    def with_action(self, action: int) -> SampleName:
        return SampleName(self.setup, self.camera, self.performer, self.replication, action)

    def __str__(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )
