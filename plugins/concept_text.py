"""Built-in task ``concept-text``: zero-shot retrieval of each test trial's concept among the test concepts'
names, embedded by the image encoder's text tower.

The EEG encoder is trained against image embeddings; this task ranks its EEG embedding against the CLIP
*text* embeddings of ``prompt`` filled with each test concept's words ("a photo of a aircraft carrier"). That
comparison is meaningful only where image and text share a space: CLIP's joint embedding
(``output = "embedding"`` of the open_clip encoders). An encoder without a text tower, or another output (the
seed's 768-d CLS token, a block's token), is refused in one line when the cell starts, before training.

Each trial's true concept is its image's concept (``image_index`` → the test image set's concepts); ties
count against the trial, as in ``retrieval``. Chance is k / (number of test concepts).
"""

from __future__ import annotations

import re

from eegbench import hookimpl
from eegbench.components import Component
from eegbench.errors import EegbenchError
from eegbench.interfaces import Task, TaskScore

DEFAULT_PROMPT = "a photo of a {concept}"


def concept_words(concept: str) -> str:
    """``"00001_aircraft_carrier"`` → ``"aircraft carrier"`` (the dataset's concept folder name as words)."""
    return re.sub(r"^\d+_", "", concept).replace("_", " ")


class ConceptTextTask(Task):
    """Top-k concept retrieval from EEG through the image encoder's text tower, per test subject."""

    name = "concept-text"

    def __init__(self, prompt: str = DEFAULT_PROMPT, topk: list[int] | tuple[int, ...] = (1, 5), center: bool = False):
        if not isinstance(prompt, str):
            raise EegbenchError(f"task 'concept-text': prompt must be text with {{concept}}, got {prompt!r}")
        try:
            filled = prompt.format(concept="dog")
        except (KeyError, IndexError, ValueError) as exc:
            raise EegbenchError(
                f"task 'concept-text': prompt = {prompt!r} is not a template with only {{concept}} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if filled == prompt:
            raise EegbenchError(f"task 'concept-text': prompt = {prompt!r} has no {{concept}} placeholder")
        ks = sorted({int(k) for k in topk}) if not isinstance(topk, (str, bytes)) else []
        if not ks or ks[0] < 1:
            raise EegbenchError(f"task 'concept-text': topk must be positive integers, got {topk!r}")
        if not isinstance(center, bool):
            raise EegbenchError(f"task 'concept-text': center must be true or false, got {center!r}")
        self.prompt, self.topk, self.center = prompt, ks, center
        self.text_emb = None
        self.concept_of_image = None

    def setup(self, *, train_images, test_images, image_encoder, cache_root=None, device: str = "cpu") -> None:
        import numpy as np

        what = getattr(image_encoder, "fingerprint", type(image_encoder).__name__)
        if not callable(getattr(image_encoder, "encode_text", None)):
            raise EegbenchError(
                f"task 'concept-text': image encoder {what!r} has no text tower (encode_text); use an "
                'open_clip encoder (clip-vit-b-32, open_clip:MODEL/TAG) with output = "embedding"'
            )
        output = getattr(image_encoder, "output", None)
        if output != "embedding":
            raise EegbenchError(
                f"task 'concept-text': image encoder output = {output!r}: EEG embeddings trained on it do "
                'not share CLIP\'s text space; set [image_encoder.params] output = "embedding" (the '
                "joint image embedding)"
            )
        concepts, concept_of_image = np.unique(np.asarray(test_images.concepts), return_inverse=True)
        prompts = [self.prompt.format(concept=concept_words(str(c))) for c in concepts]
        self.text_emb = np.asarray(image_encoder.encode_text(prompts, device=device), dtype=np.float32)
        self.concept_of_image = concept_of_image.astype(np.int64)

    def evaluate(self, eeg_emb, image_emb, image_index, subjects) -> list[TaskScore]:
        import torch

        from eegbench_plugins.retrieval import cosine_similarities, per_subject_scores

        if self.text_emb is None:
            raise EegbenchError("task 'concept-text': evaluate() before setup(); the engine calls setup at cell start")
        eeg = torch.as_tensor(eeg_emb).float()
        if self.text_emb.shape[1] != eeg.shape[1]:
            raise EegbenchError(
                f"task 'concept-text': text embeddings are {self.text_emb.shape[1]}-d but EEG embeddings "
                f"{eeg.shape[1]}-d; the image encoder's image and text outputs differ in width"
            )
        true = torch.as_tensor(self.concept_of_image, device=eeg.device)[
            torch.as_tensor(image_index, device=eeg.device).long()
        ]
        subj = torch.as_tensor(subjects, device=eeg.device).long()
        sim = cosine_similarities(eeg, self.text_emb, center=self.center, gallery="concept text embeddings")
        rank = (sim >= sim.gather(1, true[:, None])).sum(dim=1) - 1
        return per_subject_scores(rank, subj, int(sim.shape[1]), self.topk, "text_top")


def build(
    prompt: str = DEFAULT_PROMPT, topk: list[int] | tuple[int, ...] = (1, 5), center: bool = False
) -> ConceptTextTask:
    return ConceptTextTask(prompt=prompt, topk=topk, center=center)


@hookimpl
def eegbench_tasks():
    return [
        Component(
            kind="task",
            name="concept-text",
            summary=(
                "Zero-shot EEG -> concept-name retrieval through the image encoder's CLIP text tower "
                '(output = "embedding")'
            ),
            factory="eegbench_plugins.concept_text:build",
            citation="",
            notes='needs an encoder with encode_text and output = "embedding" (refused at cell start otherwise)',
        )
    ]
