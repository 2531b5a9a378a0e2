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

**k-way retrieval** (``kway``, the curves ATM-S and later papers report): each test trial is ranked among its
true image and k - 1 distractors drawn uniformly without replacement from the *other* images of the gallery;
``top1_<k>way`` (and ``top5_<k>way`` for k >= 10) is the hit rate averaged over ``kway_draws`` independent
draws per trial, drawn with a generator seeded by ``kway_seed`` on the evaluating device (the draws, so the
values, are the same for a seed on one kind of device). Ties count against the trial, as for ``top1``; at
k = n_way every other image is a distractor, so ``top1_<n_way>way`` equals ``top1`` exactly. A k larger than
the gallery is skipped (the gallery's size is only known when the cell runs); ``kway = []`` turns the
k-way metrics off. Chance is 1/k (5/k for top-5).
"""

from __future__ import annotations

from eegbench import hookimpl
from eegbench.components import Component
from eegbench.interfaces import Task, TaskScore

#: the field's k-way curve (ATM-S reports 2, 4, 10 and 200)
KWAY_DEFAULT = (2, 4, 10, 50, 100, 200)
#: random keys drawn at once per chunk of draws (bounds memory: one float32 key per trial, image and draw)
_KEYS_PER_CHUNK = 1 << 24


class RetrievalTask(Task):
    """Top-k retrieval accuracy per test subject; chance is ``k / n_way``."""

    name = "retrieval"

    def __init__(
        self,
        topk: list[int] | tuple[int, ...] = (1, 3, 5),
        center: bool = False,
        kway: list[int] | tuple[int, ...] = KWAY_DEFAULT,
        kway_draws: int = 100,
        kway_seed: int = 0,
    ):
        from eegbench.errors import EegbenchError

        if not isinstance(center, bool):
            raise EegbenchError(f"task 'retrieval': center must be true or false, got {center!r}")
        self.center = center
        ks = sorted({int(k) for k in topk})
        if not ks or ks[0] < 1:
            raise EegbenchError(f"task 'retrieval': topk must be positive integers, got {list(topk)}")
        self.topk = ks
        if isinstance(kway, (str, bytes)) or not all(isinstance(k, int) and not isinstance(k, bool) for k in kway):
            raise EegbenchError(f"task 'retrieval': kway must be a list of integers >= 2, got {kway!r}")
        ways = sorted(set(kway))
        if ways and ways[0] < 2:
            raise EegbenchError(
                f"task 'retrieval': kway must be integers >= 2 (a trial against k - 1 distractors), got {list(kway)}"
            )
        self.kway = ways
        for key, value, low in (("kway_draws", kway_draws, 1), ("kway_seed", kway_seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low or value > 2**32 - 1:
                raise EegbenchError(f"task 'retrieval': {key} must be an integer in {low} ... 2**32 - 1, got {value!r}")
        self.kway_draws, self.kway_seed = int(kway_draws), int(kway_seed)

    def evaluate(self, eeg_emb, image_emb, image_index, subjects) -> list[TaskScore]:
        import torch

        eeg = torch.as_tensor(eeg_emb).float()
        idx = torch.as_tensor(image_index, device=eeg.device).long()
        subj = torch.as_tensor(subjects, device=eeg.device).long()
        sim = cosine_similarities(eeg, image_emb, center=self.center, gallery="image embeddings (test gallery)")
        n_way = sim.shape[1]
        true = sim.gather(1, idx[:, None])
        beats = sim >= true  # [n, n_way]: images scored at least as high as the true one (itself included)
        rank = beats.sum(dim=1) - 1
        kway_hits = kway_hit_rates(beats, idx, self.kway, self.kway_draws, self.kway_seed)
        return per_subject_scores(rank, subj, n_way, self.topk, "top", hits=kway_hits)


def per_subject_scores(
    rank, subjects, n_way: int, topk, prefix: str, *, extra: dict | None = None, hits: dict | None = None
) -> list[TaskScore]:
    """One :class:`TaskScore` per test subject from each trial's ``rank`` (0: the true item first; ties count
    against it): ``<prefix><k>`` hit rates for ``k`` in ``topk`` with chance ``min(1, k / n_way)``, then the
    per-trial ``hits`` (``{metric: (hit rate per trial, chance)}``, as :func:`kway_hit_rates` gives) averaged
    over the subject's trials; ``extra`` follows the trial count in each score's ``extra``."""
    import torch

    scores = []
    for s in torch.unique(subjects).tolist():
        mask = subjects == s
        r = rank[mask]
        metrics = {f"{prefix}{k}": float((r < k).float().mean().item()) for k in topk}
        chance = {f"{prefix}{k}": min(1.0, k / n_way) for k in topk}
        for name, (per_trial, chance_k) in (hits or {}).items():
            metrics[name] = float(per_trial[mask].mean().item())
            chance[name] = chance_k
        scores.append(
            TaskScore(
                subject=int(s),
                metrics=metrics,
                chance=chance,
                n_way=n_way,
                extra={"n_trials": int(mask.sum().item()), **(extra or {})},
            )
        )
    return scores


def cosine_similarities(eeg, gallery_emb, *, center: bool, gallery: str):
    """``[n, m]`` cosine similarities of EEG embeddings ``[n, d]`` to a gallery ``[m, d]`` (``gallery`` names it in
    errors). With ``center`` each embedding is mean-centred over its features first, as the seed does.
    Non-finite values are refused, never ranked (a nan similarity compares false with everything, which would
    rank the true item first)."""
    import torch

    eeg = torch.as_tensor(eeg).float()
    ref = torch.as_tensor(gallery_emb, device=eeg.device).float()
    if center:
        eeg = eeg - eeg.mean(dim=1, keepdim=True)
        ref = ref - ref.mean(dim=1, keepdim=True)
    eeg = torch.nn.functional.normalize(eeg, dim=1)
    ref = torch.nn.functional.normalize(ref, dim=1)
    _refuse_non_finite(eeg, "EEG embeddings (test trials)")
    _refuse_non_finite(ref, gallery)
    sim = eeg @ ref.T
    _refuse_non_finite(sim, "similarities")
    return sim


def kway_hit_rates(beats, true_index, ways, draws: int, seed: int) -> dict:
    """``{metric: (hit rate per trial [n] averaged over draws, chance)}`` of k-way retrieval.

    ``beats[i, j]``: image j scores at least as high as trial i's true image (the true column is True). Each
    draw gives every trial k - 1 distractors: the k - 1 smallest of uniform random keys over the other images
    (the true image's key is +inf, so it is never its own distractor); the trial's rank in its k-way set is
    the number of distractors that beat it. Vectorised over trials and a chunk of draws.
    """
    import torch

    n, n_way = beats.shape
    out: dict = {}
    ways = [k for k in ways if k <= n_way]
    if not ways or n == 0:
        return out
    device = beats.device
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    beats_f = beats.to(torch.float32)
    rows = torch.arange(n, device=device)
    chunk = max(1, min(draws, _KEYS_PER_CHUNK // max(1, n * n_way)))
    sums = {k: [torch.zeros(n, device=device), torch.zeros(n, device=device)] for k in ways}
    done = 0
    while done < draws:
        d = min(chunk, draws - done)
        keys = torch.rand((d, n, n_way), generator=gen, device=device)
        keys[:, rows, true_index] = float("inf")
        order = keys.argsort(dim=2)  # the distractors of k-way are the first k - 1 images of each draw's order
        # beaters among the first j + 1 distractors of each draw: [d, n, n_way]
        ranked = beats_f[rows[None, :, None], order].cumsum(dim=2)
        for k in ways:
            rank_k = ranked[:, :, k - 2]  # the trial's rank in its k-way set (k >= 2)
            sums[k][0] += (rank_k < 1).sum(dim=0)
            if k >= 10:
                sums[k][1] += (rank_k < 5).sum(dim=0)
        done += d
    for k in ways:
        out[f"top1_{k}way"] = (sums[k][0] / draws, 1.0 / k)
        if k >= 10:
            out[f"top5_{k}way"] = (sums[k][1] / draws, min(1.0, 5.0 / k))
    return out


def _refuse_non_finite(values, what: str) -> None:
    """One line (a run-time cell failure, nothing scored) when ``values`` hold inf or nan."""
    import torch

    bad = ~torch.isfinite(values).reshape(len(values), -1).all(dim=1)
    if bool(bad.any()):
        from eegbench.errors import CellFailure

        raise CellFailure(
            f"task 'retrieval': {what} are not finite in {int(bad.sum())} of {len(values)} rows "
            f"(first: row {int(bad.nonzero()[0, 0])}); refusing to score them (a diverged model or "
            "non-finite inputs)"
        )


def build(
    topk: list[int] | tuple[int, ...] = (1, 3, 5),
    center: bool = False,
    kway: list[int] | tuple[int, ...] = KWAY_DEFAULT,
    kway_draws: int = 100,
    kway_seed: int = 0,
) -> RetrievalTask:
    return RetrievalTask(topk=topk, center=center, kway=kway, kway_draws=kway_draws, kway_seed=kway_seed)


@hookimpl
def eegbench_tasks():
    return [
        Component(
            kind="task",
            name="retrieval",
            summary=(
                "Zero-shot n-way image retrieval (cosine), top-k and k-way top-1/top-5 per test subject; "
                "center = true as the seed"
            ),
            factory="eegbench_plugins.retrieval:build",
            citation="",
        )
    ]
