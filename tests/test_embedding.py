"""Embedding cache with provenance, user embedding files, and `eegbench embed`."""

from __future__ import annotations

import types

import numpy as np
import pytest

import eegbench
from eegbench import Component, hookimpl
from eegbench.errors import DataError
from eegbench.execution.embedding import cached_entry, embed_images, is_cached, load_embedding_file
from eegbench.interfaces import ImageEncoder, ImageSet, stable_hash


class CountingEncoder(ImageEncoder):
    """Deterministic embeddings from the image id; its fingerprint covers its preprocessing."""

    def __init__(self, preprocessing: str = "resize-224", dim: int = 5):
        self.dim = dim
        self.preprocessing = preprocessing
        self.fingerprint = "counting:" + stable_hash({"pre": preprocessing, "dim": dim})
        self.calls = 0

    def encode(self, images, *, device="cpu", batch_size=64, progress=True):
        self.calls += 1
        return np.stack(
            [
                np.random.default_rng(abs(hash((i, self.preprocessing))) % 2**32).normal(size=self.dim)
                for i in images.ids
            ]
        ).astype(np.float32)

    def describe(self):
        return {**super().describe(), "preprocessing": self.preprocessing}


def image_set(ids=("a", "b", "c"), name="set/test"):
    return ImageSet(name, tuple(ids), tuple(f"{i}.jpg" for i in ids), tuple(ids))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))


def test_second_embedding_is_a_cache_hit_with_manifest():
    enc, images = CountingEncoder(), image_set()
    assert not is_cached(enc, images)
    first = embed_images(enc, images, progress=False)
    assert enc.calls == 1 and is_cached(enc, images)
    entry = cached_entry(enc, images)
    meta = entry.meta
    assert meta["ids"] == ["a", "b", "c"] and meta["image_set"] == "set/test"
    assert meta["encoder"]["fingerprint"] == enc.fingerprint and meta["encoder"]["preprocessing"] == "resize-224"
    again = embed_images(enc, images, progress=False)
    assert enc.calls == 1  # served from the cache: the encoder did not run
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32


def test_changed_order_or_preprocessing_is_a_miss():
    enc, images = CountingEncoder(), image_set()
    embed_images(enc, images, progress=False)
    reordered = image_set(("c", "a", "b"))
    assert not is_cached(enc, reordered)
    out = embed_images(enc, reordered, progress=False)
    assert enc.calls == 2
    other = CountingEncoder(preprocessing="resize-256")
    assert not is_cached(other, images)
    embed_images(other, images, progress=False)
    assert other.calls == 1
    # the reordered set's rows follow its own order
    base = embed_images(enc, images, progress=False)
    np.testing.assert_array_equal(out, base[[2, 0, 1]])


def test_encoder_output_is_validated_before_caching():
    class Broken(CountingEncoder):
        def encode(self, images, **kw):
            out = super().encode(images)
            out[1, 0] = np.nan
            return out

    enc, images = Broken(), image_set()
    with pytest.raises(DataError, match="NaN"):
        embed_images(enc, images, progress=False)
    assert not is_cached(enc, images)


def test_user_file_checks_count_dim_order_and_normalisation(tmp_path):
    images = image_set()
    emb = np.eye(3, 4, dtype=np.float32)
    path = tmp_path / "feat.npz"
    np.savez(path, ids=np.array(["c", "b", "a"]), embeddings=emb)
    rows = load_embedding_file(path, images, dim=4, normalized=True)
    np.testing.assert_array_equal(rows, emb[[2, 1, 0]])  # reordered to the image set
    with pytest.raises(DataError, match="dim 4, expected 512"):
        load_embedding_file(path, images, dim=512)
    with pytest.raises(DataError, match="have no row"):
        load_embedding_file(path, image_set(("a", "b", "z")))
    np.savez(path, ids=np.array(["c", "b", "a"]), embeddings=2 * emb)
    with pytest.raises(DataError, match="not unit norm"):
        load_embedding_file(path, images, normalized=True)
    np.savez(path, ids=np.array(["c", "b"]), embeddings=emb)
    with pytest.raises(DataError, match="shape"):
        load_embedding_file(path, images)
    np.savez(path, ids=np.array([object()], dtype=object), embeddings=emb[:1])
    with pytest.raises(DataError, match="without pickle"):
        load_embedding_file(path, images)


def test_embedding_file_encoder_through_the_cache(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    np.savez(
        root / "lat.npz", ids=np.array(["a", "b", "c"]), embeddings=np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    )
    images = ImageSet("set/test", ("a", "b", "c"), ("a", "b", "c"), ("a", "b", "c"), root=str(root))
    enc = eegbench.create("image-encoder", "embedding-file", path="lat.npz")  # relative to the image set root
    out = embed_images(enc, images, progress=False)
    assert out.shape == (3, 4) and is_cached(enc, images)


def test_cli_embed(tmp_path, monkeypatch, capsys):
    from eegbench import registry
    from eegbench.cli import main

    root = tmp_path / "data"
    root.mkdir()
    ids = ["test_images/a.jpg", "test_images/b.jpg", "training_images/c.jpg"]
    np.savez(
        root / "lat.npz", ids=np.array(ids), embeddings=np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    )

    class TinyDataset:
        def __init__(self, root=None):
            self.root = root

        def image_set(self, split):
            chosen = tuple(i for i in ids if i.startswith(split.replace("train", "training")))
            return ImageSet(f"tiny/{split}", chosen, chosen, chosen, root=str(self.root))

    plugin = types.SimpleNamespace()
    plugin.eegbench_datasets = hookimpl(
        lambda: [Component(kind="dataset", name="tiny-images", summary="t", factory=TinyDataset)]
    )
    monkeypatch.setattr(registry, "_default", registry.Registry(plugins=[plugin]))
    args = [
        "embed",
        "--dataset",
        "tiny-images",
        "--root",
        str(root),
        "--image-encoder",
        "embedding-file",
        "--set",
        "path=lat.npz",
        "--split",
        "train,test",
        "--quiet",
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train: 1 x 8 (computed)" in out and "test: 2 x 8 (computed)" in out
    assert str(tmp_path / "cache") in out
    # the deprecated spellings (--param, --cache-dir) still work, say so on stderr, and find the same cache
    old = [a for a in args if a not in ("--set", "--cache")]
    old[old.index("path=lat.npz") : old.index("path=lat.npz")] = ["--param"]
    old[old.index(str(tmp_path / "cache")) : old.index(str(tmp_path / "cache"))] = ["--cache-dir"]
    assert main(old) == 0
    captured = capsys.readouterr()
    assert "test: 2 x 8 (cached)" in captured.out
    assert (
        "--param is deprecated; use --set" in captured.err and "--cache-dir is deprecated; use --cache" in captured.err
    )
    assert main(["embed", "--dataset", "tiny-images", "--image-encoder", "embedding-file", "--split", "val"]) == 2
