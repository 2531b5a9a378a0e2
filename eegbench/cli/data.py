"""The command groups whose members plugins add: ``eegbench download X``, ``eegbench preprocess X`` and
``eegbench data verify X`` (the core knows no dataset; the ``eegbench_cli`` hook fills them)."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any, parser_class: type) -> tuple[Any, Any, Any]:
    """Register the groups on the top-level subparsers; return their sub-parser collections
    ``(download, preprocess, verify)`` for the ``eegbench_cli`` hook."""
    download = sub.add_parser("download", help="download a dataset").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=parser_class, required=True
    )
    preprocess = sub.add_parser("preprocess", help="preprocess a dataset's raw recordings").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=parser_class, required=True
    )
    data = sub.add_parser("data", help="inspect datasets on disk").add_subparsers(
        dest="data_command", metavar="ACTION", parser_class=parser_class, required=True
    )
    verify = data.add_parser("verify", help="list what is present, missing or corrupt").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=parser_class, required=True
    )
    return download, preprocess, verify
