"""(skeleton: being written)"""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register this module's CLI subcommands on the top-level subparsers."""
