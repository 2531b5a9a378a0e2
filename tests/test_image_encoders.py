"""Image encoders: open_clip equivalence with a local checkpoint, loud missing weights, embedding files, timm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import eegbench
from eegbench.errors import DataError, EegbenchError, WeightsError
from eegbench.interfaces import ImageSet


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    files = []
    for i, shape in enumerate([(40, 56), (64, 48), (33, 33)]):
        name = f"test_images/c{i}/img{i}.jpg"
        (root / name).parent.mkdir(parents=True)
        Image.fromarray((rng.random((*shape, 3)) * 255).astype("uint8")).save(root / name)
        files.append(name)
    return ImageSet("tiny/test", tuple(files), tuple(files), ("c0", "c1", "c2"), root=str(root))


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """A randomly initialised open_clip ViT-B-32 (QuickGELU, as OpenAI's weights) saved to a checkpoint file."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", force_quick_gelu=True).eval()
    path = tmp_path_factory.mktemp("weights") / "vit_b_32_random.pt"
    torch.save(model.state_dict(), path)
    preprocess = open_clip.image_transform(
        model.visual.image_size, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD
    )
    return model, path, preprocess


def reference_batch(images, preprocess):
    from PIL import Image

    return torch.stack([preprocess(Image.open(f"{images.root}/{f}")) for f in images.files])


def test_clip_vit_b_32_from_local_file_equals_open_clip(vit, images):
    model, path, preprocess = vit
    enc = eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path))
    assert enc.dim == 512 and enc.random_init is False
    assert not any(p.requires_grad for p in enc.model.parameters()) and not enc.model.training
    got = enc.encode(images, batch_size=2, progress=False)
    with torch.no_grad():
        want = model.encode_image(reference_batch(images, preprocess)).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 512)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # text side of the same CLIP (for ATM's text term)
    prompts = ["a photo of an aardvark", "a photo of a zebra"]
    with torch.no_grad():
        want_text = model.encode_text(__import__("open_clip").get_tokenizer("ViT-B-32")(prompts)).numpy()
    np.testing.assert_allclose(enc.encode_text(prompts), want_text, rtol=1e-4, atol=1e-5)


def _hooked_tokens(model, batch, module):
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        model.encode_image(batch)
    handle.remove()
    return seen["out"]


def test_cls_and_block_outputs_equal_direct_tokens(vit, images):
    model, path, preprocess = vit
    batch = reference_batch(images, preprocess)
    cls = eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path), output="cls")
    assert cls.dim == 768
    # the CLS token of the transformer's output, i.e. before ln_post and the projection
    tokens = _hooked_tokens(model, batch, model.visual.transformer)
    np.testing.assert_allclose(cls.encode(images, progress=False), tokens[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        after_ln = model.visual.ln_post(tokens[:, 0]).numpy()
    assert not np.allclose(cls.encode(images, progress=False), after_ln, atol=1e-3)

    block = eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path), output="block:3")
    tokens3 = _hooked_tokens(model, batch, model.visual.transformer.resblocks[3])
    np.testing.assert_allclose(block.encode(images, progress=False), tokens3[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    fingerprints = {
        cls.fingerprint,
        block.fingerprint,
        eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path)).fingerprint,
    }
    assert len(fingerprints) == 3
    with pytest.raises(EegbenchError, match="out of range"):
        eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path), output="block:12")
    with pytest.raises(EegbenchError, match='output must be "embedding", "cls" or "block:N"'):
        eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path), output="pooled")


def test_fingerprint_covers_weights_file_and_preprocessing(vit, tmp_path):
    model, path, _ = vit
    enc = eegbench.create("image-encoder", "clip-vit-b-32", weights=str(path))
    assert enc.weights_identity.startswith("sha256:")
    # another weights file: another fingerprint
    other = tmp_path / "other.pt"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["visual.proj"] += 1.0
    torch.save(state, other)
    enc_other = eegbench.create("image-encoder", "clip-vit-b-32", weights=str(other))
    assert enc_other.fingerprint != enc.fingerprint
    # the same encoder with another preprocessing: another fingerprint
    from torchvision import transforms

    before = enc.fingerprint
    enc.preprocess = transforms.Compose([transforms.Resize(200), *enc.preprocess.transforms[1:]])
    assert enc._fingerprint() != before


def test_missing_weights_offline_is_one_line(tmp_path):
    with pytest.raises(WeightsError) as err:
        eegbench.create("image-encoder", "clip-vit-b-32", cache_dir=str(tmp_path / "empty"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "open_clip_pytorch_model.bin" in msg or "ViT-B-32.pt" in msg
    assert 'weights = "path/to/file"' in msg and 'weights = "none"' in msg
    with pytest.raises(EegbenchError, match="does not exist"):
        eegbench.create("image-encoder", "clip-vit-b-32", weights=str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsError, match="no pretrained tag 'no-such-tag'"):
        eegbench.create("image-encoder", "clip-vit-b-32", weights="no-such-tag")


def test_random_init_only_when_asked():
    enc = eegbench.create("image-encoder", "clip-vit-b-32", weights="none")
    assert enc.random_init is True and enc.describe()["random_init"] is True
    assert "random-init" in enc.weights_identity


def test_families_resolve_through_the_hook():
    comp = eegbench.get_component("image-encoder", "open_clip:ViT-H-14/laion2b_s32b_b79k")
    assert comp.defaults["model"] == "ViT-H-14" and comp.defaults["weights"] == "laion2b_s32b_b79k"
    assert eegbench.get_component("image-encoder", "timm:resnet18").defaults["model"] == "resnet18"


def test_timm_family_random_and_file(tmp_path, images):
    import timm

    enc = eegbench.create("image-encoder", "timm:test_vit", weights="none")
    assert enc.random_init and enc.dim == 64
    torch.manual_seed(1)
    net = timm.create_model("test_vit", num_classes=0).eval()
    path = tmp_path / "test_vit.pth"
    torch.save(net.state_dict(), path)
    enc_file = eegbench.create("image-encoder", "timm:test_vit", weights=str(path))
    got = enc_file.encode(images, progress=False)
    with torch.no_grad():
        want = net(reference_batch(images, enc_file.preprocess)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(WeightsError, match="network is off") as err:
        eegbench.create("image-encoder", "timm:test_vit", cache_dir=str(tmp_path / "empty"))
    assert "\n" not in str(err.value)


# --- embedding-file -----------------------------------------------------------------------------------------
def _write(path, ids, emb):
    np.savez(path, ids=np.asarray(ids, dtype=str), embeddings=np.asarray(emb, dtype=np.float32))
    return path


def test_embedding_file_serves_rows_by_id(images, tmp_path):
    rng = np.random.default_rng(0)
    ids = [*list(images.ids)[::-1], "training_images/extra/x.jpg"]  # another order, one extra row
    emb = rng.normal(size=(4, 6)).astype(np.float32)
    root = tmp_path / "root"
    root.mkdir()
    _write(root / "latents.npz", ids, emb)
    local = ImageSet(images.name, images.ids, images.files, images.concepts, root=str(root))
    enc = eegbench.create("image-encoder", "embedding-file", path="latents.npz").for_images(local)
    got = enc.encode(local)
    np.testing.assert_array_equal(got, emb[[2, 1, 0]])
    assert enc.dim == 6 and enc.fingerprint.startswith("embedding-file:")
    # rewriting the file changes the fingerprint
    before = enc.fingerprint
    _write(root / "latents.npz", ids, emb + 1)
    assert (
        eegbench.create("image-encoder", "embedding-file", path="latents.npz").for_images(local).fingerprint != before
    )


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "have no row"),
        ("duplicate", "more than once"),
        ("nan", "NaN or inf"),
        ("zero", "all zero"),
        ("not-unit", "not unit norm"),
    ],
)
def test_embedding_file_rejects_bad_files(images, tmp_path, case, match):
    ids = list(images.ids)
    emb = np.eye(3, 4, dtype=np.float32)
    if case == "missing":
        ids, emb = ids[:2], emb[:2]
    elif case == "duplicate":
        ids, emb = ids + ids[:1], np.vstack([emb, emb[:1]])
    elif case == "nan":
        emb[1, 0] = np.nan
    elif case == "zero":
        emb[2] = 0
    elif case == "not-unit":
        emb[0] *= 2
    path = _write(tmp_path / "f.npz", ids, emb)
    enc = eegbench.create("image-encoder", "embedding-file", path=str(path), normalized="l2")
    with pytest.raises(DataError, match=match):
        enc.encode(images)


def test_random_init_is_one_seeded_model():
    """`weights = "none"` builds the same weights every time, without touching the caller's random state."""
    import torch

    import eegbench

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = eegbench.create("image-encoder", "timm:resnet18", weights="none")
    assert torch.equal(torch.rand(1), expected_next)  # the caller's generator did not move
    b = eegbench.create("image-encoder", "timm:resnet18", weights="none")
    assert a.fingerprint == b.fingerprint and a.random_init
    for (na, pa), (nb, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
