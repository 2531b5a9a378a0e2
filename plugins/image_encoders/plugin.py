"""Image encoders: ``clip-vit-b-32``, ``embedding-file`` and the ``open_clip:`` / ``timm:`` families.

Listing imports nothing heavy: open_clip, timm and torch load inside the factories, whose signatures hold
each encoder's parameters and defaults (the families bind the name's model and weights with ``functools.partial``).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from typing import Any

from eegbench import Component, hookimpl
from eegbench.errors import EegbenchError, UnknownComponentError

CLIP_CITATION = "Radford et al. (2021), Learning Transferable Visual Models From Natural Language Supervision, ICML"
OPEN_CLIP_CITATION = (
    "Cherti et al. (2023), Reproducible scaling laws for contrastive language-image learning, CVPR (open_clip)"
)
TIMM_CITATION = "Wightman (2019), PyTorch Image Models (timm)"


@hookimpl
def eegbench_image_encoders() -> list[Component]:
    return [
        Component(
            kind="image-encoder",
            name="clip-vit-b-32",
            summary=(
                "CLIP ViT-B/32 (open_clip ViT-B-32, OpenAI weights): joint 512-d embedding, CLS token (768-d) "
                "or a block's CLS"
            ),
            factory="eegbench_plugins.image_encoders.plugin:build_clip_vit_b_32",
            citation=CLIP_CITATION,
            notes=(
                'output = "cls" is the CLS token before ln_post and the projection (768-d, the seed\'s target); '
                '"block:N" the CLS token after block N. weights: a tag, a local checkpoint file, '
                'or "none" (random init)'
            ),
        ),
        Component(
            kind="image-encoder",
            name="embedding-file",
            summary="Embeddings read from a .npz (ids + embeddings), served by image id and validated",
            factory="eegbench_plugins.image_encoders.plugin:build_embedding_file",
            notes='relative paths resolve against the image set\'s root; normalized = "l2" checks unit-norm rows',
        ),
    ]


@hookimpl
def eegbench_resolve_family(kind: str, name: str) -> Component | None:
    """``open_clip:<model>/<pretrained>`` and ``timm:<model>`` image encoders.

    The member is checked against the library's own registry (``open_clip.list_models()`` and its pretrained
    tags, ``timm.is_model``/``timm.list_models(pretrained=True)``), so a made-up name is refused with close
    matches by ``eegbench info`` and at plan time, before any cell runs. This imports the library (and torch):
    only names of that family get here.
    """
    if kind != "image-encoder":
        return None
    prefix, _, rest = name.partition(":")
    if prefix == "open_clip" and rest:
        model, _, tag = rest.partition("/")
        if not model:
            return None
        check_open_clip_member(name, model, tag)
        return _open_clip_component(name, model, tag)
    if prefix == "timm" and rest:
        check_timm_member(name, rest)
        return _timm_component(name, rest)
    return None


@hookimpl
def eegbench_list_family(kind: str, pattern: str) -> list[Component]:
    if kind != "image-encoder":
        return []
    out: list[Component] = []
    if pattern_asks_for("open_clip", pattern):
        import open_clip

        for model, tag in open_clip.list_pretrained():
            name = f"open_clip:{model}/{tag}"
            if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                out.append(_open_clip_component(name, model, tag))
    if pattern_asks_for("timm", pattern):
        import timm

        for model in timm.list_models(pretrained=True):
            name = f"timm:{model}"
            if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                out.append(_timm_component(name, model))
    return out


def pattern_asks_for(family: str, pattern: str) -> bool:
    """Whether the literal head of ``pattern`` (before its first wildcard) names ``family:``; ``'*'`` does not."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0].lower()
    prefix = family.lower() + ":"
    return bool(head) and (prefix.startswith(head) or head.startswith(prefix))


def _unknown(name: str, what: str, word: str, candidates: list[str], listing: str) -> UnknownComponentError:
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if close:
        hint = " — did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:  # nothing close: name a few so the line still says what exists
        hint = f" ({', '.join(candidates[:4])}{', ...' if len(candidates) > 4 else ''})" if candidates else ""
    return UnknownComponentError(
        f"unknown image-encoder {name!r}: {what}{hint} (eegbench list image-encoder {listing!r})"
    )


def check_open_clip_member(name: str, model: str, tag: str) -> None:
    import open_clip

    models = open_clip.list_models()
    if model not in models:
        raise _unknown(name, f"open_clip has no model {model!r}", model, models, "open_clip:*")
    if tag:
        tags = open_clip.list_pretrained_tags_by_model(model)
        if tag not in tags:
            raise _unknown(name, f"open_clip {model} has no pretrained tag {tag!r}", tag, tags, f"open_clip:{model}/*")


def check_timm_member(name: str, model: str) -> None:
    import timm

    arch, dot, _tag = model.partition(".")
    if not timm.is_model(arch):
        raise _unknown(name, f"timm has no model {arch!r}", arch, timm.list_models(), f"timm:{arch[:3]}*")
    if dot:
        tagged = timm.list_models(f"{arch}.*", pretrained=True)
        if model not in tagged:
            raise _unknown(name, f"timm has no pretrained weights {model!r}", model, tagged, f"timm:{arch}.*")


def _open_clip_component(name: str, model: str, tag: str) -> Component:
    return Component(
        kind="image-encoder",
        name=name,
        summary=f"open_clip {model}" + (f" with {tag} weights" if tag else ""),
        # the name gives the model and weights defaults; its tag also tells how to read a weights *file*
        # given instead (QuickGELU, preprocessing)
        factory=functools.partial(build_open_clip_family, model=model, weights=tag or "none", _default_tag=tag),
        citation=CLIP_CITATION if tag == "openai" else OPEN_CLIP_CITATION,
        notes='weights: the tag in the name, a local checkpoint file, or "none" (random init)',
    )


def _timm_component(name: str, model: str) -> Component:
    return Component(
        kind="image-encoder",
        name=name,
        summary=f"timm {model}: pooled pre-logits features",
        factory=functools.partial(build_timm_family, model=model),
        citation=TIMM_CITATION,
    )


def build_clip_vit_b_32(
    *,
    weights: str = "openai",
    output: str = "embedding",
    quick_gelu: Any = "auto",
    normalize: bool = False,
    cache_dir: str = "",
):
    """``clip-vit-b-32`` factory. A weights *file* is taken to be OpenAI's (QuickGELU, OpenAI preprocessing)."""
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(
        "ViT-B-32",
        weights,
        output=output,
        quick_gelu=quick_gelu,
        normalize=normalize,
        cache_dir=cache_dir,
        default_tag="openai",
        name="clip-vit-b-32",
    )


def build_open_clip_family(
    *,
    model: str,
    weights: str,
    output: str = "embedding",
    quick_gelu: Any = "auto",
    normalize: bool = False,
    cache_dir: str = "",
    _default_tag: str = "",
):
    """``open_clip:<model>/<tag>`` factory; the family binds ``model``, ``weights`` and ``_default_tag`` (the
    name's tag, not a user parameter: it tells how to read a weights file) from the name."""
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(
        model,
        weights,
        output=output,
        quick_gelu=quick_gelu,
        normalize=normalize,
        cache_dir=cache_dir,
        default_tag=_default_tag,
        name=f"open_clip:{model}/{_default_tag or weights}",
    )


def build_timm_family(
    *, model: str, weights: str = "default", output: str = "embedding", normalize: bool = False, cache_dir: str = ""
):
    from .timm_encoder import TimmEncoder

    return TimmEncoder(model, weights=weights, output=output, normalize=normalize, cache_dir=cache_dir)


def build_embedding_file(
    *,
    path: str = "",
    normalized: str = "any",
    normalize: bool = False,
    ids_key: str = "ids",
    embeddings_key: str = "embeddings",
):
    from .embedding_file import EmbeddingFileEncoder

    if not isinstance(path, str):
        raise EegbenchError(f"image encoder embedding-file: path must be a string, got {path!r}")
    return EmbeddingFileEncoder(
        path, normalized=normalized, normalize=normalize, ids_key=ids_key, embeddings_key=embeddings_key
    )
