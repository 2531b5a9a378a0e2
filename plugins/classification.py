"""Built-in task ``classification``: the seed's ``--downstream classification``, as a linear probe or by finetuning.

Both modes learn the *training concepts* (n_classes = the training image set's concepts: 1,654 on Things-EEG-2)
from the cell's training trials, after the encoder is trained and its checkpoint selected on validation loss:

- ``mode = "probe"`` (default): a linear layer over the frozen encoder's L2-normalised EEG embeddings, AdamW and
  cross-entropy in mini-batches for ``epochs``; the probe's epoch is selected by its loss on the validation
  trials.
- ``mode = "finetune"``: a copy of the selected encoder and a linear head over its L2-normalised embeddings are
  trained together with cross-entropy for up to ``finetune_epochs`` (encoder at ``finetune_lr``, head at
  ``lr``); the epoch with the lowest validation loss is kept, and training stops after ``patience`` epochs
  without improvement. The test trials are embedded by the tuned copy; the cell's checkpoint (and any stage
  that loads it) keeps the contrastively selected encoder.

Selection reads the validation trials only (the last epoch when the spec has no validation split); the test
trials are scored once. Test trials must show images of training concepts, so the task needs
``[dataset] test_split = "train-heldout"`` (the plan refuses it otherwise): held-out images of seen concepts, as
the seed's runs without ``--separate_test``.

Metrics ``class_top1`` / ``class_top5`` (chance k / n_classes); ties count against the trial.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from eegbench import hookimpl
from eegbench.components import Component
from eegbench.errors import EegbenchError
from eegbench.interfaces import Task, TaskScore

MODES = ("probe", "finetune")


def _check_int(key: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise EegbenchError(f"task 'classification': {key} must be an integer >= {low}, got {value!r}")


def _check_number(key: str, value: Any, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 if positive else value >= 0):
        raise EegbenchError(
            f"task 'classification': {key} must be a number {'> 0' if positive else '>= 0'}, got {value!r}"
        )


class ClassificationTask(Task):
    """Training-concept classification scored per test subject: a linear probe on frozen EEG embeddings, or
    the encoder finetuned with a linear head."""

    name = "classification"
    needs_training_data = True
    needs_seen_concepts = True

    def __init__(
        self,
        mode: str = "probe",
        epochs: int = 50,
        batch_size: int = 1024,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        finetune_epochs: int = 20,
        finetune_lr: float = 1e-4,
        patience: int = 5,
        topk: list[int] | tuple[int, ...] = (1, 5),
        seed: int = 0,
    ):
        if mode not in MODES:
            raise EegbenchError(
                f"task 'classification': mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}"
            )
        for key, value, low in (
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
            ("finetune_epochs", finetune_epochs, 1),
            ("patience", patience, 0),
        ):
            _check_int(key, value, low)
        for key, value, positive in (
            ("lr", lr, True),
            ("weight_decay", weight_decay, False),
            ("finetune_lr", finetune_lr, True),
        ):
            _check_number(key, value, positive)
        ks = sorted({int(k) for k in topk}) if not isinstance(topk, (str, bytes)) else []
        if not ks or ks[0] < 1:
            raise EegbenchError(f"task 'classification': topk must be positive integers, got {topk!r}")
        self.mode = mode
        self.needs_encoder = mode == "finetune"  # the engine then calls fit_encoder instead of fit
        self.epochs, self.batch_size, self.lr, self.weight_decay = (
            int(epochs),
            int(batch_size),
            float(lr),
            float(weight_decay),
        )
        self.finetune_epochs, self.finetune_lr, self.patience = int(finetune_epochs), float(finetune_lr), int(patience)
        self.topk, self.seed = ks, int(seed)
        self.classes = None
        self.probe = None
        self.selected_epoch = 0

    def setup(self, *, train_images, test_images, image_encoder=None, cache_root=None, device: str = "cpu") -> None:
        import numpy as np

        classes, class_of_train = np.unique(np.asarray(train_images.concepts), return_inverse=True)
        index = {c: i for i, c in enumerate(classes.tolist())}
        unseen = [c for c in test_images.concepts if c not in index]
        if unseen:
            raise EegbenchError(
                f"task 'classification': {len(unseen)} test image(s) show concepts never trained on "
                f'(e.g. {unseen[0]!r}); set [dataset] test_split = "train-heldout"'
            )
        self.classes = classes
        self.class_of_train_image = class_of_train.astype(np.int64)
        self.class_of_test_image = np.array([index[c] for c in test_images.concepts], dtype=np.int64)

    # -- shared: mini-batch AdamW, the epoch selected on validation loss only ---------------------------------
    def _train_selected(
        self,
        parts,
        groups,
        n: int,
        epochs: int,
        patience: int,
        batch_loss: Callable[[Any], Any],
        val_loss: Callable[[], float] | None,
        min_batch: int = 1,
    ) -> int:
        """Train ``parts`` (modules) for up to ``epochs``; keep the state of the lowest validation loss (stop after
        ``patience`` epochs without improvement; 0: never) or the last one without validation; return its epoch."""
        import torch

        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        opt = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, best_epoch, stale, epoch = float("inf"), None, 0, 0, 0
        with torch.enable_grad():
            for epoch in range(1, epochs + 1):
                for part in parts:
                    part.train()
                perm = torch.randperm(n, generator=gen)
                for start in range(0, n, self.batch_size):
                    rows = perm[start : start + self.batch_size]
                    if len(rows) < min_batch:  # a lone trailing trial would break batch norm in train mode
                        continue
                    loss = batch_loss(rows)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if val_loss is None:
                    continue
                for part in parts:
                    part.eval()
                with torch.no_grad():
                    current = float(val_loss())
                if current < best:
                    best, best_epoch, stale = current, epoch, 0
                    best_state = [{k: v.detach().clone() for k, v in part.state_dict().items()} for part in parts]
                else:
                    stale += 1
                    if patience and stale >= patience:
                        break
        if best_state is not None:
            for part, state in zip(parts, best_state, strict=True):
                part.load_state_dict(state)
        else:
            best_epoch = epoch
        for part in parts:
            part.eval()
        return best_epoch

    def _new_head(self, dim: int, device):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return torch.nn.Linear(dim, len(self.classes)).to(device)

    def _labels(self, image_index, device):
        import torch

        labels = torch.as_tensor(self.class_of_train_image, device=device)
        return labels[torch.as_tensor(image_index, device=device).long()]

    def _check_setup(self) -> None:
        if self.classes is None:
            raise EegbenchError("task 'classification': fit() before setup(); the engine calls setup at cell start")

    # -- probe: a linear layer on frozen embeddings --------------------------------------------------------------
    def fit(self, train_emb, train_image_index, val_emb, val_image_index) -> None:
        import torch

        self._check_setup()
        if self.needs_encoder:
            raise EegbenchError("task 'classification': mode = \"finetune\" trains through fit_encoder, not fit")
        normalize = torch.nn.functional.normalize
        x = normalize(torch.as_tensor(train_emb).float(), dim=1)
        device = x.device
        y = self._labels(train_image_index, device)
        val_loss = None
        if val_emb is not None and len(val_emb) > 0:
            xv = normalize(torch.as_tensor(val_emb, device=device).float(), dim=1)
            yv = self._labels(val_image_index, device)
            val_loss = lambda: loss_fn(probe(xv), yv)
        probe = self._new_head(x.shape[1], device)
        loss_fn = torch.nn.CrossEntropyLoss()
        self.selected_epoch = self._train_selected(
            [probe],
            probe.parameters(),
            len(x),
            self.epochs,
            0,
            lambda rows: loss_fn(probe(x[rows.to(device)]), y[rows.to(device)]),
            val_loss,
        )
        self.probe = probe

    # -- finetune: a copy of the encoder and a linear head, trained together -------------------------------------
    def fit_encoder(self, model, train, val):
        import torch

        self._check_setup()
        if not self.needs_encoder:
            raise EegbenchError("task 'classification': mode = \"probe\" trains through fit, not fit_encoder")
        normalize = torch.nn.functional.normalize
        tuned = copy.deepcopy(model)  # the engine's model (the cell's checkpoint) stays as selected
        device = train.x.device
        y = self._labels(train.image_index, device)
        with torch.no_grad():
            tuned.eval()
            dim = int(tuned(train.x[:1], train.subject[:1]).shape[1])
        head = self._new_head(dim, device)
        loss_fn = torch.nn.CrossEntropyLoss()

        def logits(x, subject):
            return head(normalize(tuned(x, subject).float(), dim=1))

        def batch_loss(rows):
            rows = rows.to(device)
            return loss_fn(logits(train.x[rows], train.subject[rows]), y[rows])

        val_loss = None
        if val is not None and len(val) > 0:
            yv = self._labels(val.image_index, device)

            def val_loss() -> float:  # mean cross-entropy over every validation trial, in batches
                total = 0.0
                for start in range(0, len(val), self.batch_size):
                    sl = slice(start, start + self.batch_size)
                    total += float(
                        torch.nn.functional.cross_entropy(logits(val.x[sl], val.subject[sl]), yv[sl], reduction="sum")
                    )
                return total / len(val)

        groups = [{"params": list(tuned.parameters()), "lr": self.finetune_lr}, {"params": list(head.parameters())}]
        cuda = (
            [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        )
        with torch.random.fork_rng(devices=cuda):  # dropout draws seeded by the task, the caller's RNG untouched
            torch.manual_seed(self.seed)
            self.selected_epoch = self._train_selected(
                [tuned, head],
                groups,
                len(train),
                self.finetune_epochs,
                self.patience,
                batch_loss,
                val_loss,
                min_batch=2,
            )
        self.probe = head
        return tuned

    def evaluate(self, eeg_emb, image_emb, image_index, subjects) -> list[TaskScore]:
        import torch

        from eegbench_plugins.retrieval import per_subject_scores

        if self.probe is None:
            raise EegbenchError("task 'classification': evaluate() before fit(); it needs needs_training_data")
        x = torch.nn.functional.normalize(torch.as_tensor(eeg_emb).float(), dim=1)
        device = x.device
        true = torch.as_tensor(self.class_of_test_image, device=device)[
            torch.as_tensor(image_index, device=device).long()
        ]
        subj = torch.as_tensor(subjects, device=device).long()
        with torch.no_grad():
            logits = self.probe.to(device)(x)
        rank = (logits >= logits.gather(1, true[:, None])).sum(dim=1) - 1
        epoch_key = "finetune_epoch" if self.needs_encoder else "probe_epoch"
        extra = {epoch_key: int(self.selected_epoch)}
        return per_subject_scores(rank, subj, len(self.classes), self.topk, "class_top", extra=extra)


def build(
    mode: str = "probe",
    epochs: int = 50,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    finetune_epochs: int = 20,
    finetune_lr: float = 1e-4,
    patience: int = 5,
    topk: list[int] | tuple[int, ...] = (1, 5),
    seed: int = 0,
) -> ClassificationTask:
    return ClassificationTask(
        mode=mode,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        finetune_epochs=finetune_epochs,
        finetune_lr=finetune_lr,
        patience=patience,
        topk=topk,
        seed=seed,
    )


@hookimpl
def eegbench_tasks():
    return [
        Component(
            kind="task",
            name="classification",
            summary="Classification of the training concepts (the seed's downstream classification): a linear probe "
            "on the trained EEG embeddings or the encoder finetuned with a linear head (mode); needs "
            'test_split = "train-heldout"',
            factory="eegbench_plugins.classification:build",
            citation="",
            notes="probe / finetune epoch selected on validation loss only; metrics class_top1 / class_top5",
        )
    ]
