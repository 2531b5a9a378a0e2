"""(skeleton: being written)"""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register ``eegbench status`` on the top-level subparsers."""
