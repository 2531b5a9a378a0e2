"""The plugin module eegbench loads through the entry point: it registers components, nothing heavy.

torch is imported by the model module only when the backbone is built. The factory's signature gives the
parameters and their defaults (``eegbench info tinynet`` reads them from it).
"""

from eegbench import Component, hookimpl


@hookimpl
def eegbench_backbones():
    return [
        Component(
            kind="backbone",
            name="tinynet",
            summary="Temporal conv -> spatial conv -> average pool: a small example backbone",
            factory="eegbench_tinynet.plugin:build",
            citation="eegbench example plugin (no paper)",
        )
    ]


def build(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info=None,
    subjects=None,
    *,
    n_filters: int = 16,
    kernel: int = 9,
    pool: int = 4,
):
    from .model import TinyNet

    return TinyNet(n_chans, n_times, n_filters=n_filters, kernel=kernel, pool=pool)
