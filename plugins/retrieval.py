"""Built-in task ``retrieval``: zero-shot n-way image retrieval from EEG embeddings.

Each test trial's EEG embedding is ranked by cosine similarity against the embeddings of *every* image of
the test split (the gallery: 200 images on the Things-EEG-2 release). The true image is known by its row
(``image_index``), never guessed by nearest neighbour, so duplicate embeddings or several subjects tested
together cannot mix images up. Ties count against the trial (an image scored equal to the true one ranks
ahead of it), so a constant model scores 0, not 100%.

``center = true`` subtracts each EEG and image embedding's mean over its features before the cosine, as the
seed's retrieval does (``src/downstream.py`` / ``src/utils.py`` of NonaRjb/AlignVis); the default is the plain
cosine. With distinct image embeddings and one subject, the scores equal the seed's (tests/test_parity_seed.py);
the seed finds the true image by nearest neighbour instead of by row.
Non-finite embeddings are refused, never ranked (a nan similarity compares false with everything,
which would rank the true image first).
"""
from __future__ import annotations

from eegbench import hookimpl
from eegbench.components import Component
from eegbench.interfaces import Task, TaskScore


class RetrievalTask(Task):
    """Top-k retrieval accuracy per test subject; chance is ``k / n_way``."""

    name = "retrieval"

    def __init__(self, topk: list[int] | tuple[int, ...] = (1, 3, 5), center: bool = False):
        from eegbench.errors import EegbenchError

        if not isinstance(center, bool):
            raise EegbenchError(f"task 'retrieval': center must be true or false, got {center!r}")
        self.center = center
        ks = sorted({int(k) for k in topk})
        if not ks or ks[0] < 1:
            raise EegbenchError(f"task 'retrieval': topk must be positive integers, got {list(topk)}")
        self.topk = ks

    def evaluate(self, eeg_emb, image_emb, image_index, subjects) -> list[TaskScore]:
        import torch

        eeg = torch.as_tensor(eeg_emb).float()
        img = torch.as_tensor(image_emb, device=eeg.device).float()
        idx = torch.as_tensor(image_index, device=eeg.device).long()
        subj = torch.as_tensor(subjects, device=eeg.device).long()
        n_way = img.shape[0]
        if self.center:
            eeg = eeg - eeg.mean(dim=1, keepdim=True)
            img = img - img.mean(dim=1, keepdim=True)
        eeg = torch.nn.functional.normalize(eeg, dim=1)
        img = torch.nn.functional.normalize(img, dim=1)
        _refuse_non_finite(eeg, "EEG embeddings (test trials)")
        _refuse_non_finite(img, "image embeddings (test gallery)")
        sim = eeg @ img.T  # [n, n_way]
        _refuse_non_finite(sim, "similarities")
        true = sim.gather(1, idx[:, None])
        rank = (sim >= true).sum(dim=1) - 1  # images scored at least as high as the true one
        scores = []
        for s in torch.unique(subj).tolist():
            mask = subj == s
            r = rank[mask]
            metrics = {f"top{k}": float((r < k).float().mean().item()) for k in self.topk}
            chance = {f"top{k}": min(1.0, k / n_way) for k in self.topk}
            scores.append(TaskScore(subject=int(s), metrics=metrics, chance=chance, n_way=n_way,
                                    extra={"n_trials": int(mask.sum().item())}))
        return scores

    def context(self) -> dict:
        return {"gallery": "test-split images", "topk": self.topk, "center": self.center}


def _refuse_non_finite(values, what: str) -> None:
    """One line (a run-time cell failure, nothing scored) when ``values`` hold inf or nan."""
    import torch

    bad = ~torch.isfinite(values).reshape(len(values), -1).all(dim=1)
    if bool(bad.any()):
        from eegbench.errors import CellFailure

        raise CellFailure(f"task 'retrieval': {what} are not finite in {int(bad.sum())} of {len(values)} rows "
                          f"(first: row {int(bad.nonzero()[0, 0])}); refusing to score them (a diverged model or "
                          "non-finite inputs)")


def build(topk: list[int] | tuple[int, ...] = (1, 3, 5), center: bool = False) -> RetrievalTask:
    return RetrievalTask(topk=topk, center=center)


@hookimpl
def eegbench_tasks():
    return [
        Component(
            kind="task",
            name="retrieval",
            summary="Zero-shot n-way image retrieval (cosine), top-k per test subject; center = true as the seed",
            factory="eegbench_plugins.retrieval:build",
            citation="",
        )
    ]
