"""The ``xmkd`` command line: one subcommand per workflow step.

Each module in :mod:`xmkd.commands` adds its own subcommand through ``register(subparsers)``;
modules import their heavy dependencies inside their ``run`` function so ``xmkd --help`` is quick.
Option values are checked when they are parsed (:mod:`xmkd.commands._args`); errors the user can
act on (:class:`xmkd.errors.XmkdError`) are printed as one sentence.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from xmkd import __version__, commands
from xmkd.commands._args import XmkdArgumentParser
from xmkd.errors import XmkdError

DESCRIPTION = """\
xmkd turns an RGB/optical-flow action-recognition teacher into skeleton action recognizers
without labelling a single skeleton (cross-modal knowledge distillation, Thoker & Gall).

Data flows one way:
  sensor -> capture (record) -> recordings -> teacher labels (label) -> distillation (distill)
  -> engines (export) -> live display (live, gui)
"""


def build_parser() -> argparse.ArgumentParser:
    # every subcommand's parser is an XmkdArgumentParser too (argparse makes subparsers of the
    # parent's class): a bad option value is one line naming the option, exit code 2
    parser = XmkdArgumentParser(
        prog="xmkd", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"xmkd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if not exc.code:  # --help and --version exit as argparse does
            raise
        # a bad option value, already printed in one line: its exit code, as for other errors
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except XmkdError as err:
        print(f"xmkd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xmkd {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
