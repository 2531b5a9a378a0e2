"""The plugin module eegbench loads through the entry point: it registers components, nothing heavy.

torch is imported by the model module only when the backbone is built.
"""
from eegbench import Component, hookimpl


@hookimpl
def eegbench_backbones():
    return [
        Component(
            kind="backbone",
            name="tinynet",
            summary="Temporal conv -> spatial conv -> average pool: a small example backbone",
            factory="eegbench_tinynet.model:build",
            defaults={"n_filters": 16, "kernel": 9, "pool": 4},
            citation="eegbench example plugin (no paper)",
        )
    ]
