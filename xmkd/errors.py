"""User-facing errors: each carries one clear sentence; the CLI prints it without a traceback."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


class XmkdError(Exception):
    """An error the user can act on; ``str(err)`` is the whole message."""


class FormatError(XmkdError):
    """A file does not follow its format; names the file, the line and what was expected."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class CheckpointError(XmkdError):
    """A checkpoint cannot be loaded safely or does not hold what was asked for."""


class MissingExtraError(XmkdError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str, hint: str | None = None) -> ModuleType:
    """Import ``module`` or raise one sentence naming the pip extra that provides it.

    ``hint`` replaces the default install advice (e.g. for native SDKs pip cannot install).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also catches a native library that fails to load
        advice = hint or f'install it with: pip install "xmkd[{extra}]"'
        raise MissingExtraError(
            f"{purpose} needs the Python package '{module.split('.')[0]}' "
            f"({exc.__class__.__name__}: {exc}); {advice}."
        ) from exc
