"""Built-in task ``classification``: the seed's ``--downstream classification`` as a linear probe.

After the encoder is trained (and its checkpoint selected on validation loss), a linear layer over the
L2-normalised EEG embeddings learns the *training concepts* (n_classes = the training image set's concepts:
1,654 on Things-EEG-2) from the cell's training trials, with AdamW and cross-entropy in mini-batches. The
probe's epoch is selected by its loss on the cell's validation trials only (the last epoch when the spec has
no validation split); the test trials are scored once. Test trials must show images of training concepts, so
the task needs ``[dataset] test_split = "train-heldout"`` (the plan refuses it otherwise): held-out images of
seen concepts, as the seed's runs without ``--separate_test``.

Metrics ``class_top1`` / ``class_top5`` (chance k / n_classes); ties count against the trial.
Finetuning the encoder through a classification head is not offered yet.
"""
from __future__ import annotations

from typing import Any

from eegbench import hookimpl
from eegbench.components import Component
from eegbench.errors import EegbenchError
from eegbench.interfaces import Task, TaskScore


class ClassificationTask(Task):
    """A linear probe on frozen EEG embeddings over the training concepts, scored per test subject."""

    name = "classification"
    needs_training_data = True
    needs_seen_concepts = True

    def __init__(self, epochs: int = 50, batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-4,
                 topk: list[int] | tuple[int, ...] = (1, 5), seed: int = 0):
        for key, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise EegbenchError(f"task 'classification': {key} must be an integer >= {low}, got {value!r}")
        for key, value, positive in (("lr", lr, True), ("weight_decay", weight_decay, False)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 if positive else value >= 0):
                raise EegbenchError(f"task 'classification': {key} must be a number {'> 0' if positive else '>= 0'}, "
                                    f"got {value!r}")
        ks = sorted({int(k) for k in topk}) if not isinstance(topk, (str, bytes)) else []
        if not ks or ks[0] < 1:
            raise EegbenchError(f"task 'classification': topk must be positive integers, got {topk!r}")
        self.epochs, self.batch_size, self.lr, self.weight_decay = int(epochs), int(batch_size), float(lr), float(weight_decay)
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
            raise EegbenchError(f"task 'classification': {len(unseen)} test image(s) show concepts never trained on "
                                f"(e.g. {unseen[0]!r}); set [dataset] test_split = \"train-heldout\"")
        self.classes = classes
        self.class_of_train_image = class_of_train.astype(np.int64)
        self.class_of_test_image = np.array([index[c] for c in test_images.concepts], dtype=np.int64)

    def fit(self, train_emb, train_image_index, val_emb, val_image_index) -> None:
        import torch

        if self.classes is None:
            raise EegbenchError("task 'classification': fit() before setup(); the engine calls setup at cell start")
        x = torch.nn.functional.normalize(torch.as_tensor(train_emb).float(), dim=1)
        device = x.device
        labels = torch.as_tensor(self.class_of_train_image, device=device)
        y = labels[torch.as_tensor(train_image_index, device=device).long()]
        has_val = val_emb is not None and len(val_emb) > 0
        if has_val:
            xv = torch.nn.functional.normalize(torch.as_tensor(val_emb, device=device).float(), dim=1)
            yv = labels[torch.as_tensor(val_image_index, device=device).long()]
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            probe = torch.nn.Linear(x.shape[1], len(self.classes)).to(device)
        opt = torch.optim.AdamW(probe.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        best, best_state, best_epoch = float("inf"), None, 0
        with torch.enable_grad():
            for epoch in range(self.epochs):
                probe.train()
                perm = torch.randperm(len(x), generator=gen).to(device)
                for start in range(0, len(x), self.batch_size):
                    rows = perm[start:start + self.batch_size]
                    loss = loss_fn(probe(x[rows]), y[rows])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if has_val:
                    probe.eval()
                    with torch.no_grad():
                        val_loss = float(loss_fn(probe(xv), yv))
                    if val_loss < best:
                        best, best_epoch = val_loss, epoch + 1
                        best_state = {k: v.detach().clone() for k, v in probe.state_dict().items()}
        if best_state is not None:
            probe.load_state_dict(best_state)
        else:
            best_epoch = self.epochs
        probe.eval()
        self.probe, self.selected_epoch = probe, best_epoch

    def evaluate(self, eeg_emb, image_emb, image_index, subjects) -> list[TaskScore]:
        import torch

        if self.probe is None:
            raise EegbenchError("task 'classification': evaluate() before fit(); it needs needs_training_data")
        x = torch.nn.functional.normalize(torch.as_tensor(eeg_emb).float(), dim=1)
        device = x.device
        true = torch.as_tensor(self.class_of_test_image, device=device)[torch.as_tensor(image_index, device=device).long()]
        subj = torch.as_tensor(subjects, device=device).long()
        with torch.no_grad():
            logits = self.probe.to(device)(x)
        rank = (logits >= logits.gather(1, true[:, None])).sum(dim=1) - 1
        n_classes = len(self.classes)
        scores = []
        for s in torch.unique(subj).tolist():
            mask = subj == s
            r = rank[mask]
            scores.append(TaskScore(
                subject=int(s), n_way=n_classes,
                extra={"n_trials": int(mask.sum().item()), "probe_epoch": int(self.selected_epoch)},
                metrics={f"class_top{k}": float((r < k).float().mean().item()) for k in self.topk},
                chance={f"class_top{k}": min(1.0, k / n_classes) for k in self.topk}))
        return scores

    def context(self) -> dict[str, Any]:
        return {"classes": "training concepts", "probe": "linear"}


def build(epochs: int = 50, batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-4,
          topk: list[int] | tuple[int, ...] = (1, 5), seed: int = 0) -> ClassificationTask:
    return ClassificationTask(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, topk=topk, seed=seed)


@hookimpl
def eegbench_tasks():
    return [
        Component(
            kind="task",
            name="classification",
            summary="Linear probe over the training concepts on the trained EEG embeddings (the seed's downstream "
                    "classification); needs test_split = \"train-heldout\"",
            factory="eegbench_plugins.classification:build",
            citation="",
            notes="probe epoch selected on validation loss only; metrics class_top1 / class_top5",
        )
    ]
