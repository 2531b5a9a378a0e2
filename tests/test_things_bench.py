"""Data-preparation speed (pytest-benchmark; figures reported in docs/performance.md, never asserted).

With benchmarks disabled (the default) these run once on a small array as correctness checks; with
``--benchmark-enable`` they use one subject of the real training shape (16540 x 4 x 17 x 100 float64).
Run: ``pytest tests/test_things_bench.py --benchmark-enable -p no:randomly``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.interpolate import interp1d

from eegbench.interfaces import PrepOptions
from eegbench_plugins.things_eeg2 import layout
from eegbench_plugins.things_eeg2.loader import ThingsEEG2
from eegbench_plugins.things_eeg2.safe_pickle import load_pickled_npy, save_pickled_dict

pytestmark = pytest.mark.benchmark
REAL = (16540, 4, 17, 100)
SMALL = (400, 4, 17, 100)
OPTS = PrepOptions(averaging="all", n_times=128)


@pytest.fixture(scope="module")
def release(tmp_path_factory, request):
    enabled = not request.config.getoption("benchmark_disable", False) or request.config.getoption(
        "benchmark_enable", False
    )
    shape = REAL if enabled else SMALL
    root = tmp_path_factory.mktemp("bench") / "release"
    n = shape[0]
    concepts = [f"{i // 10 + 1:05d}_c{i // 10}" for i in range(n)]
    save_pickled_dict(
        layout.metadata_file(root),
        {
            "train_img_files": [f"c{i // 10}_{i % 10:02d}b.jpg" for i in range(n)],
            "train_img_concepts": concepts,
            "train_img_concepts_THINGS": concepts,
            "test_img_files": ["t.jpg"],
            "test_img_concepts": ["00001_t"],
            "test_img_concepts_THINGS": ["00001_t"],
        },
    )
    data = np.random.default_rng(0).standard_normal(shape)
    save_pickled_dict(
        layout.preprocessed_file(root, 1, "train"),
        {"preprocessed_eeg_data": data, "ch_names": list(layout.OCCIPITO_PARIETAL), "times": np.arange(-20, 80) * 0.01},
    )
    return root, shape


class SeedStyleDataset:
    """The seed's shape: the whole pickle in memory, averaging + interp1d per sample in __getitem__."""

    def __init__(self, path):
        self.data = load_pickled_npy(path)["preprocessed_eeg_data"]

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x = self.data[i].mean(0)
        return interp1d(np.arange(x.shape[-1]), x, axis=-1)(np.linspace(0, x.shape[-1] - 1, 128)).astype(np.float32)


def test_first_preparation(benchmark, release, tmp_path):
    root, shape = release
    cache = tmp_path / "cache"

    def fresh():
        shutil.rmtree(cache, ignore_errors=True)
        return (ThingsEEG2(root, cache_root=cache),), {}

    out = benchmark.pedantic(lambda ds: ds.load(1, "train", OPTS), setup=fresh, rounds=3, iterations=1)
    assert out.eeg.shape == (shape[0], 17, 128) and out.eeg.dtype == np.float32


def test_cached_reload(benchmark, release, tmp_path):
    root, _ = release
    ds = ThingsEEG2(root, cache_root=tmp_path / "cache")
    first = np.array(ds.load(1, "train", OPTS).eeg)
    # materialise the memory map so the figure is an honest "data in RAM" time
    out = benchmark(lambda: np.array(ThingsEEG2(root, cache_root=tmp_path / "cache").load(1, "train", OPTS).eeg))
    np.testing.assert_array_equal(out, first)


def test_seed_style_per_sample_loader(benchmark, release, tmp_path):
    """One pass of the seed's loader (load + every __getitem__), the same result as the vectorized path."""
    root, _ = release

    def one_epoch():
        ds = SeedStyleDataset(layout.preprocessed_file(root, 1, "train"))
        return np.stack([ds[i] for i in range(len(ds))])

    out = benchmark.pedantic(one_epoch, rounds=1, iterations=1)
    ours = ThingsEEG2(root, cache_root=tmp_path / "cache").load(1, "train", OPTS).eeg
    np.testing.assert_allclose(out, ours, rtol=1e-4, atol=1e-5)
