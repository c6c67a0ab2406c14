"""Subcommands of ``xmkd``: each module defines ``register(subparsers)`` (see :mod:`xmkd.cli`)."""
