"""The training engine: one cell = prepare data → embed images → train with honest selection → evaluate once.

Fast path (why it is shaped like this): the prepared split, the image-embedding table and the trial →
image index all go to the device once; an epoch is an on-device ``randperm`` sliced into batches, so there
is no DataLoader, no per-sample Python and no per-step host synchronisation (losses are summed on the
device and read once per epoch). On CUDA the forward pass runs under bf16 autocast; ``torch.compile`` is
optional.

Honesty: model selection, early stopping and plateau schedules read the validation split, which is drawn
from the *training* split; the test split's EEG is loaded only after training has finished, and the task
evaluates it once, on the selected weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.amp.grad_scaler import GradScaler

from eegbench.errors import CellFailure, DataError, EegbenchError, load_failure, one_line
from eegbench.execution.resources import apply_thread_limit, resolve_device
from eegbench.interfaces import (
    Dataset,
    EEGBackbone,
    EEGData,
    GrowsSubjects,
    ImageEncoder,
    ImageSet,
    ImageSetBound,
    OwnProjection,
    PrepOptions,
    Split,
    SubjectAware,
    TaskScore,
    TextAligned,
    TextEncoder,
    stable_hash,
)
from eegbench.planning.plan import build_dataset
from eegbench.planning.recipe import Cell, ComponentRef, Preparation, Training
from eegbench.registry import create
from eegbench.version import __version__

if TYPE_CHECKING:
    from eegbench.execution.splits import Standardizer

log = logging.getLogger("eegbench.execution.engine")

CHECKPOINT_FORMAT = "eegbench-encoder-1"
ProgressFn = Callable[[Mapping[str, Any]], None]


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
#: The engine's head kinds: ``"linear"`` is ``Linear(n_features, image_dim)``; ``"identity"`` passes the
#: backbone's output through (a backbone that already ends with its own projection to the image width).
HEAD_KINDS = ("linear", "identity")


def head_kind_for(backbone: nn.Module, image_dim: int) -> str:
    """The head the engine gives ``backbone`` for ``image_dim``-d image embeddings.

    ``"identity"`` when the backbone declares ``includes_projection = True`` (its output is already the
    projection into an embedding space) and its ``n_features`` equals ``image_dim``, so the model is the
    backbone alone; ``"linear"`` otherwise.
    """
    if isinstance(backbone, OwnProjection) and backbone.includes_projection and backbone.n_features == int(image_dim):
        return "identity"
    return "linear"


def takes_subject(backbone: Any) -> bool:
    """Whether the backbone is called ``forward(x, subject)`` (it declares :class:`SubjectAware` True)."""
    return isinstance(backbone, SubjectAware) and bool(backbone.takes_subject)


def needs_text(loss_fn: Any) -> bool:
    """Whether the loss is called with text embeddings (it declares :class:`TextAligned` True)."""
    return isinstance(loss_fn, TextAligned) and bool(loss_fn.needs_text)


class EEGEncoder(nn.Module):
    """A backbone followed by the engine's head (attribute ``head_kind``, one of :data:`HEAD_KINDS`).

    ``head = "auto"`` picks it with :func:`head_kind_for`: ``Linear(n_features, image_dim)``, or no extra
    layer (``nn.Identity``) for a backbone that includes its projection at the image width. Passing the
    kind explicitly rebuilds a stored model as it was trained.
    """

    def __init__(self, backbone: nn.Module, image_dim: int, head: str = "auto"):
        super().__init__()
        if not isinstance(backbone, EEGBackbone):
            raise EegbenchError(
                f"backbone {type(backbone).__name__} breaks the EEGBackbone contract "
                "(eegbench.interfaces): it has no attribute n_features (the width of its output)"
            )
        n_features = backbone.n_features
        if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
            raise EegbenchError(
                f"backbone {type(backbone).__name__} has n_features = {n_features!r}; the EEGBackbone "
                "contract needs a positive int (the width of its output)"
            )
        kind = head_kind_for(backbone, image_dim) if head == "auto" else head
        if kind not in HEAD_KINDS:
            raise EegbenchError(f'EEG encoder head {head!r} unknown: use "auto", {", ".join(map(repr, HEAD_KINDS))}')
        if kind == "identity" and n_features != int(image_dim):
            raise EegbenchError(
                f"EEG encoder head 'identity' needs the backbone's n_features ({n_features}) to equal "
                f"the image-embedding dimension ({image_dim}); use head 'linear'"
            )
        self.backbone = backbone
        self.head_kind = kind
        self.head = nn.Linear(n_features, image_dim) if kind == "linear" else nn.Identity()
        self.takes_subject = takes_subject(backbone)

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.backbone(x, subject) if self.takes_subject else self.backbone(x)
        out: torch.Tensor = self.head(feats)
        return out


def build_encoder(
    backbone: ComponentRef | Mapping[str, Any],
    *,
    n_chans: int,
    n_times: int,
    sfreq: float | None,
    ch_names: list[str] | None,
    image_dim: int,
    subjects: list[int] | None,
    head: str = "auto",
) -> EEGEncoder:
    """Build the backbone by name (with its resolved params) and add the engine's head (see :class:`EEGEncoder`)."""
    chs_info = [{"ch_name": c} for c in ch_names] if ch_names else None
    ref = backbone if isinstance(backbone, ComponentRef) else ComponentRef.from_dict(backbone)
    net = create(
        "backbone",
        ref.name,
        n_chans=n_chans,
        n_times=n_times,
        sfreq=sfreq,
        chs_info=chs_info,
        subjects=list(subjects) if subjects else None,
        **ref.kwargs(),
    )
    return EEGEncoder(net, image_dim, head=head)


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------
@dataclass
class DeviceSplit:
    """A split on the device: EEG, image row per trial, subject per trial."""

    x: torch.Tensor
    image_index: torch.Tensor
    subject: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _writable_float32(eeg: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(eeg, dtype=np.float32)
    return arr if arr.flags.writeable else arr.copy()


def to_device(eeg: np.ndarray, image_index: np.ndarray, subject: np.ndarray, device: torch.device) -> DeviceSplit:
    return DeviceSplit(
        # a read-only cache map is copied once on the host (torch cannot wrap it), never per batch
        torch.from_numpy(_writable_float32(eeg)).to(device),
        torch.as_tensor(np.asarray(image_index, dtype=np.int64)).to(device),
        torch.as_tensor(np.asarray(subject, dtype=np.int64)).to(device),
    )


@dataclass
class FitResult:
    state: dict[str, torch.Tensor]
    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    samples_seen: int = 0
    #: the global RNG state the training ended with (batched training: the member's own; else unset)
    rng_state: torch.Tensor | None = None


def _training(cfg: Training | Mapping[str, Any]) -> Training:
    """Typed training settings (a mapping of :class:`~eegbench.planning.recipe.Training`'s fields is accepted: the rest
    take their defaults)."""
    return cfg if isinstance(cfg, Training) else Training.from_dict(cfg)


class EpochSchedule:
    """The stage's learning rate, set once per epoch by torch's schedulers: linear warmup from ``min_lr`` to
    ``lr`` over ``warmup_epochs`` (``LambdaLR``), then cosine down to ``min_lr`` (``CosineAnnealingLR``, joined by
    ``SequentialLR``), constant, or cut by ``ReduceLROnPlateau`` on the validation loss (``"plateau"``; the seed's
    recipe). The optimiser is built at ``lr``; :meth:`end_epoch` steps after each epoch, on host floats only."""

    def __init__(self, opt: torch.optim.Optimizer, cfg: Training) -> None:
        from torch.optim import lr_scheduler

        lr, min_lr, warm = cfg.lr, cfg.min_lr, cfg.warmup_epochs

        def warmup_factor(epoch: int) -> float:
            return (min_lr + (lr - min_lr) * epoch / warm) / lr if epoch < warm else 1.0

        self.warmup_epochs = warm
        self.plateau: lr_scheduler.ReduceLROnPlateau | None = None
        self.scheduler: lr_scheduler.LRScheduler
        if cfg.schedule == "cosine":
            cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs - warm), eta_min=min_lr)
            self.scheduler = (
                cosine
                if warm == 0
                else lr_scheduler.SequentialLR(
                    opt, [lr_scheduler.LambdaLR(opt, warmup_factor), cosine], milestones=[warm]
                )
            )
        else:
            self.scheduler = lr_scheduler.LambdaLR(opt, warmup_factor)
        if cfg.schedule == "plateau":
            # eps=0: every cut is applied, down to min_lr (relative threshold 1e-4, as torch's default)
            self.plateau = lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=min_lr, eps=0.0
            )
        self.opt = opt

    @property
    def lr(self) -> float:
        """The learning rate the coming (or current) epoch runs at."""
        return float(self.opt.param_groups[0]["lr"])

    def end_epoch(self, epoch: int, val_loss: float | None) -> None:
        """Advance past ``epoch`` (0-based). Plateau: warmup through ``warmup_epochs``, then only a stalled
        validation loss cuts the rate (none without a validation split)."""
        if self.plateau is None or epoch < self.warmup_epochs:
            self.scheduler.step()
        elif val_loss is not None:
            self.plateau.step(val_loss)


def _autocast(device: torch.device, amp: str) -> tuple[torch.autocast, GradScaler | None]:
    if device.type == "cuda" and amp in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    if device.type == "cuda" and amp == "fp16":
        return torch.autocast("cuda", dtype=torch.float16), GradScaler("cuda")
    if device.type == "cpu" and amp == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16), None
    return torch.autocast(device.type, enabled=False), None


def for_loss(out: torch.Tensor) -> torch.Tensor:
    """The model's output as the loss takes it: half precision (autocast) up to float32, other dtypes as they are
    (a float64 model stays float64, which the batched-training tests rely on)."""
    return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


def _batches(n: int, batch_size: int, drop_last: bool) -> list[tuple[int, int]]:
    if n <= batch_size:
        return [(0, n)]
    stop = n - n % batch_size if drop_last else n
    return [(i, min(i + batch_size, stop)) for i in range(0, stop, batch_size)]


def fast_path(device: torch.device) -> dict[str, Any]:
    """The GPU fast path of a single cell, set up for ``device``; the optimiser's extra arguments.

    On CUDA: cuDNN autotuning (every batch of a cell has one shape, so the fastest convolution algorithm is
    found once) and the fused Adam/AdamW step (one kernel for all parameters instead of several per tensor).
    With no host synchronisation inside an epoch (:func:`fit`), bf16 autocast by default (``amp``) and
    ``torch.compile`` on request (``compile``), that is the fast path. On the CPU the fused step too: for a small
    EEG encoder it is a third of the time of torch's default (per-tensor) step.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return {"fused": True}


def fit(
    model: EEGEncoder,
    loss_fn: nn.Module,
    train: DeviceSplit,
    val: DeviceSplit | None,
    image_emb: torch.Tensor,
    cfg: Training | Mapping[str, Any],
    *,
    seed: int,
    selection: str = "best-val",
    text_emb: torch.Tensor | None = None,
    progress: ProgressFn | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (rows of ``image_emb`` are targets); select on ``val`` only.

    ``cfg``: the stage's :class:`~eegbench.planning.recipe.Training` (epochs, batch_size, lr, ...). Returns the selected
    weights (best validation loss for ``"best-val"``, the final ones for ``"last"``).
    """
    cfg = _training(cfg)
    device = train.x.device
    model_params = [p for p in model.parameters() if p.requires_grad]
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
    params = model_params + loss_params
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # a learnable temperature is not weight-decayed (as CLIP/open_clip exclude the logit scale)
    groups = [{"params": model_params, "weight_decay": cfg.weight_decay}]
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    opt = opt_cls(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), eps=cfg.eps, **fast_path(device))
    schedule = EpochSchedule(opt, cfg)
    autocast, scaler = _autocast(device, cfg.amp)
    # torch.compile of a module is a module (OptimizedModule); its stubs only promise a callable
    net = cast(nn.Module, torch.compile(model)) if cfg.compile else model
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    bs = int(cfg.batch_size)
    n = len(train)
    # by default full batches only (contrastive losses degrade on a tiny last batch); drop_last = false keeps the
    # partial one, as NICE's and UBP's DataLoaders do. The permutation changes per epoch
    batches = _batches(n, bs, drop_last=bool(cfg.drop_last))
    with_text = needs_text(loss_fn)
    if with_text and text_emb is None:
        raise TypeError("fit: the loss needs text embeddings and no text_emb was given")

    def step_loss(split: DeviceSplit, rows: torch.Tensor) -> torch.Tensor:
        img_rows = split.image_index[rows]
        with autocast:
            out = net(split.x[rows], split.subject[rows])
        txt = text_emb[img_rows] if with_text and text_emb is not None else None
        loss: torch.Tensor = (
            loss_fn(for_loss(out), image_emb[img_rows], txt)
            if with_text
            else loss_fn(for_loss(out), image_emb[img_rows])
        )
        return loss

    check_training_inputs(train, val, image_emb, text_emb if with_text else None)

    best_val, best_epoch, bad_epochs = math.inf, -1, 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    epochs_run = 0
    for epoch in range(int(cfg.epochs)):
        lr_used = schedule.lr
        model.train()
        loss_fn.train()
        perm = torch.randperm(n, generator=gen, device=device)
        total = torch.zeros((), device=device)
        for start, stop in batches:
            loss = step_loss(train, perm[start:stop])
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch: unannotated
                scaler.unscale_(opt)
            else:
                loss.backward()  # type: ignore[no-untyped-call]  # as above
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            try:
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
            except RuntimeError as exc:  # an update too large for float32 (absurd learning rates)
                if "overflow" not in str(exc):
                    raise
                raise diverged(epoch + 1, "the optimiser's update overflowed float32", lr_used, cfg) from None
            total += loss.detach()
        train_loss = float((total / len(batches)).item())  # the one host sync of the epoch
        val_loss = (
            validation_loss(net, loss_fn, val, image_emb, bs, autocast, text_emb) if val is not None else math.nan
        )
        epochs_run = epoch + 1
        for what, value in (("training", train_loss), ("validation", val_loss if val is not None else 0.0)):
            if not math.isfinite(value):
                raise diverged(epochs_run, f"{what} loss = {value}", lr_used, cfg)
        improved = val is not None and val_loss < best_val
        if improved:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            if selection == "best-val":
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        schedule.end_epoch(epoch, val_loss if val is not None else None)
        record = {
            "epoch": epochs_run,
            "epochs": int(cfg.epochs),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": lr_used,
        }
        history.append(record)
        if progress is not None:  # with the work done so far, for a samples/s and ETA display
            progress(
                {
                    **record,
                    "samples_seen": sum(stop - start for start, stop in batches) * epochs_run,
                    "seconds": time.perf_counter() - t0,
                }
            )
        log.debug("epoch %d/%d train %.4f val %.4f lr %.2e", epochs_run, cfg.epochs, train_loss, val_loss, lr_used)
        if cfg.patience > 0 and val is not None and bad_epochs >= cfg.patience:
            break
    if selection == "last" or best_state is None:
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best_epoch = epochs_run - 1
    seconds = time.perf_counter() - t0
    samples = sum(stop - start for start, stop in batches) * epochs_run
    return FitResult(best_state, epochs_run, best_epoch + 1, history, seconds, samples)


def check_training_inputs(
    train: DeviceSplit, val: DeviceSplit | None, image_emb: torch.Tensor, text_emb: torch.Tensor | None
) -> None:
    """Refuse non-finite training inputs as data: one would make every loss nan and (once ranked) a perfect score."""
    check_finite_split(train, "training")
    if val is not None:
        check_finite_split(val, "validation")
    check_finite(image_emb, "image embeddings of the training images")
    if text_emb is not None:
        check_finite(text_emb, "text embeddings of the training images")


def check_finite(values: torch.Tensor, what: str) -> None:
    """Refuse inf/nan in ``values`` with one line naming ``what`` and the first bad row (a :class:`DataError`)."""
    finite = torch.isfinite(values.reshape(len(values), -1)).all(dim=1) if values.ndim else torch.isfinite(values)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0, 0]) if values.ndim else 0
        raise DataError(
            f"{what} hold a non-finite value (first in row {row}); the data or embedding file behind "
            "them holds inf/nan: check it (eegbench data verify) or regenerate it"
        )


def check_finite_eeg(data: EEGData, what: str, chunk: int = 4096) -> None:
    """Refuse inf/nan in prepared EEG (host arrays, in chunks of trials), naming the subject and its trial."""
    for start in range(0, len(data), chunk):
        block = np.asarray(data.eeg[start : start + chunk])
        if not np.issubdtype(block.dtype, np.floating) and not np.issubdtype(block.dtype, np.integer):
            raise DataError(f"{what} EEG has dtype {block.dtype}; expected real floating-point values")
        finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            subject = int(data.subject[row])
            trial = int(np.count_nonzero(data.subject[:row] == subject))
            raise DataError(
                f"{what} EEG of subject {subject} holds a non-finite value (its trial {trial}): the "
                "prepared data has inf/nan; check the dataset's files (eegbench data verify) and "
                "prepare them again"
            )


def check_finite_split(split: DeviceSplit, what: str) -> None:
    """Refuse inf/nan in a split's EEG, naming the split, the trial and its subject (a :class:`DataError`)."""
    finite = torch.isfinite(split.x.reshape(len(split), -1)).all(dim=1)
    if not bool(finite.all()):
        trial = int((~finite).nonzero()[0, 0])
        subject = int(split.subject[trial])
        raise DataError(
            f"{what} EEG holds a non-finite value (subject {subject}, trial {trial} of the split, "
            f"{int((~finite).sum())} bad trial(s)): the prepared data has inf/nan; check the dataset's "
            "files (eegbench data verify) and prepare them again"
        )


def diverged(epoch: int, what: str, lr: float, cfg: Training) -> CellFailure:
    """The one line of a cell whose loss stopped being finite (its inputs were checked finite before training)."""
    hint = f"the learning rate ({lr:g}) is likely too high: lower lr"
    if cfg.grad_clip <= 0:
        hint += " or set grad_clip"
    if cfg.amp == "fp16":
        hint += '; fp16 can overflow: try amp = "bf16"'
    return CellFailure(f"training diverged at epoch {epoch}: {what} (inputs are finite; {hint}); nothing was scored")


@torch.no_grad()
def validation_loss(
    net: nn.Module,
    loss_fn: nn.Module,
    val: DeviceSplit,
    image_emb: torch.Tensor,
    batch_size: int,
    autocast: torch.autocast,
    text_emb: torch.Tensor | None = None,
) -> float:
    """Mean loss over fixed (unshuffled) validation batches, in eval mode."""
    net.eval()
    loss_fn.eval()
    total = torch.zeros((), device=val.x.device)
    spans = _batches(len(val), batch_size, drop_last=False)
    with_text = needs_text(loss_fn)
    if with_text and text_emb is None:
        raise TypeError("validation_loss: the loss needs text embeddings and no text_emb was given")
    for start, stop in spans:
        img_rows = val.image_index[start:stop]
        with autocast:
            out = net(val.x[start:stop], val.subject[start:stop])
        if with_text and text_emb is not None:
            total += loss_fn(for_loss(out), image_emb[img_rows], text_emb[img_rows]).detach()
        else:
            total += loss_fn(for_loss(out), image_emb[img_rows]).detach()
    return float((total / len(spans)).item())


@torch.no_grad()
def embed_eeg(model: EEGEncoder, split: DeviceSplit, batch_size: int = 1024) -> torch.Tensor:
    """EEG embeddings ``[n, image_dim]`` (float32) in eval mode."""
    model.eval()
    outs = [
        model(split.x[s:e], split.subject[s:e]).float() for s, e in _batches(len(split), batch_size, drop_last=False)
    ]
    return torch.cat(outs)


# --------------------------------------------------------------------------------------------------
# one cell
# --------------------------------------------------------------------------------------------------
@dataclass
class CellResult:
    scores: list[TaskScore]
    context: dict[str, Any]
    epochs_run: int
    best_epoch: int
    wall_seconds: float
    samples_per_second: float
    device: str
    checkpoint: str
    image_encoder_fingerprint: str
    history: list[dict[str, float]]
    #: the engine's head on the backbone (``EEGEncoder.head_kind``): part of the model, recorded in the config
    head: str = "linear"


def heldout_draw(prep: Preparation) -> tuple[float, int]:
    """The seen-concept test split's ``(heldout_fraction, heldout_seed)`` (the plan sets both with
    ``test_split = "train-heldout"``)."""
    if prep.heldout_fraction is None or prep.heldout_seed is None:
        raise EegbenchError('[dataset] test_split = "train-heldout" needs heldout_fraction and heldout_seed')
    return float(prep.heldout_fraction), int(prep.heldout_seed)


def prep_options(prep: Preparation, split: str, seed: int) -> PrepOptions:
    return PrepOptions(
        averaging=prep.train_averaging if split == "train" else prep.test_averaging,
        channels=tuple(prep.channels) if prep.channels else None,
        window=tuple(prep.window) if prep.window else None,  # type: ignore[arg-type]
        n_times=prep.n_times or None,
        seed=int(seed),
    )


def load_subjects(dataset: Dataset, subjects: Iterable[int], split: Split, options: PrepOptions) -> EEGData:
    parts = [dataset.load(int(s), split, options) for s in subjects]
    return parts[0] if len(parts) == 1 else EEGData.concat(parts)


def check_disjoint(val: EEGData | None, test_images: ImageSet, train_images: ImageSet) -> None:
    """Refuse a validation split that shares images with the test split (ids or files)."""
    if val is None or len(val) == 0:
        return
    used = np.unique(val.image_index)
    val_ids = {train_images.ids[i] for i in used} | {train_images.files[i] for i in used}
    test_ids = set(test_images.ids) | set(test_images.files)
    overlap = val_ids & test_ids
    if overlap:
        raise EegbenchError(
            f"validation would use {len(overlap)} test image(s) (e.g. {sorted(overlap)[0]!r}); "
            "validation must be drawn from training images disjoint from the test split"
        )


def _concept_word(concept: str) -> str:
    return re.sub(r"^\d+_", "", concept).replace("_", " ")


def text_embeddings(
    encoder: ImageEncoder, images: ImageSet, template: str, cache_root: str | os.PathLike[str] | None
) -> np.ndarray:
    """Text embeddings of each image's concept prompt (cached by encoder, prompts)."""
    from eegbench.execution.cache import Cache

    if not isinstance(encoder, TextEncoder):
        raise EegbenchError(
            f"the loss needs text embeddings but image encoder {encoder.fingerprint!r} has no encode_text "
            "(the TextEncoder contract of eegbench.interfaces)"
        )
    prompts = [template.format(concept=_concept_word(c)) for c in images.concepts]
    cache = Cache("text-embeddings", cache_root)
    fields = {"encoder": encoder.fingerprint, "prompts": stable_hash(prompts)}
    hit = cache.get(fields)
    if hit is not None:
        return np.asarray(hit.array("embeddings", mmap=False))
    emb = np.asarray(encoder.encode_text(prompts), dtype=np.float32)
    cache.put(fields, {"embeddings": emb})
    return emb


def grow_subject(model: EEGEncoder, subject: int) -> None:
    """Give a subject-aware model an input layer for ``subject`` when it has none (by the backbone's own rule)."""
    backbone = model.backbone
    if model.takes_subject and isinstance(backbone, GrowsSubjects) and subject not in list(backbone.subjects):
        backbone.add_subject(subject)


def run_cell(
    cell: Cell,
    *,
    results_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: ProgressFn | None = None,
    show_embedding_progress: bool = False,
) -> CellResult:
    """Run one planned cell end to end and return its scores (does not touch the results store)."""
    prepared = prepare_cell(
        cell,
        results_dir=results_dir,
        cache_dir=cache_dir,
        device=device,
        show_embedding_progress=show_embedding_progress,
    )
    result = train_prepared(prepared, progress)
    return finish_cell(
        prepared, result, results_dir=results_dir, cache_dir=cache_dir, show_embedding_progress=show_embedding_progress
    )


@dataclass
class PreparedCell:
    """A cell set up to train (what :func:`prepare_cell` built): its data on the device, model, loss and task, and
    what evaluating it needs afterwards. ``rng_state``: the global RNG state right after the model was built
    (where the cell's training starts drawing dropout masks)."""

    cell: Cell
    dataset: Any
    device: torch.device
    seed: int
    model: EEGEncoder
    loss_fn: nn.Module
    task: Any
    encoder: Any
    train: DeviceSplit
    val: DeviceSplit | None
    image_emb: torch.Tensor
    text_emb: torch.Tensor | None
    train_image_emb: np.ndarray
    test_images: Any
    heldout: np.ndarray | None
    standardizer: Any
    info: Any
    n_chans: int
    n_times: int
    image_dim: int
    t_start: float
    rng_state: torch.Tensor

    def normalise(self, eeg: np.ndarray) -> np.ndarray:
        return self.standardizer.apply(eeg) if self.standardizer is not None else np.asarray(eeg, dtype=np.float32)


def prepare_cell(
    cell: Cell,
    *,
    results_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    show_embedding_progress: bool = False,
) -> PreparedCell:
    """Everything before a cell trains: data from the training split only (training ratio, validation split,
    standardiser fitted on training trials), image (and text) embeddings, task set-up, model (built, or loaded
    from the pretrain cell's checkpoint) on the device."""
    from eegbench.execution.embedding import embed_images
    from eegbench.execution.splits import Standardizer, heldout_image_rows, image_subset, labelled_split, without_images

    t_start = time.perf_counter()
    apply_thread_limit()  # this process's share of the CPUs it may use (affinity, cgroup quota, local workers)
    recipe, where = cell.recipe, cell.placement
    prep, vcfg, tcfg = recipe.preparation, recipe.validation, recipe.stage_training
    dev = resolve_device(device)
    seed = int(where.seed)
    dataset = build_dataset(recipe.dataset, cache_dir)
    dataset.ensure_available(sorted(set(where.train_subjects) | set(where.test_subjects)))

    # --- training and validation data: from the training split only ---------------------------------------
    train_all = load_subjects(dataset, where.train_subjects, "train", prep_options(prep, "train", seed))
    check_finite_eeg(train_all, "training")  # before standardising, which would spread one nan to every trial
    heldout = None  # rows of the training images held out as the seen-concept test split (test_split "train-heldout")
    if prep.test_split == "train-heldout":
        heldout = heldout_image_rows(train_all.images, *heldout_draw(prep))
        train_all = without_images(train_all, heldout)  # no trial of a held-out image trains or validates
    # the labelled budget (training_ratio of each subject's images) first, validation drawn inside it
    train, val = labelled_split(train_all, where.training_ratio, vcfg.fraction, seed, by=vcfg.by)
    if len(train) == 0:
        raise EegbenchError(f"cell {cell.label()}: no training trials left after the validation split and ratio")
    test_images = (
        dataset.image_set("test") if heldout is None else image_subset(train_all.images, heldout, "train-heldout")
    )
    check_disjoint(val, test_images, train_all.images)
    standardizer = Standardizer.fit(train) if prep.standardize else None
    norm = standardizer.apply if standardizer is not None else (lambda a: np.asarray(a, dtype=np.float32))

    encoder = create("image-encoder", recipe.image_encoder.name, **recipe.image_encoder.kwargs())
    if isinstance(encoder, ImageSetBound):  # encoders whose identity depends on the image set (an embedding file)
        encoder = encoder.for_images(train_all.images)
    train_emb = embed_images(
        encoder, train_all.images, cache_root=cache_dir, device=str(dev), progress=show_embedding_progress
    )
    image_dim = int(train_emb.shape[1])
    emb_t = torch.as_tensor(np.array(train_emb, dtype=np.float32)).to(dev)  # a copy: cache entries are read-only maps

    # the task prepares from the image sets and encoder now (a text tower, concept names), before anything trains
    task = create("task", recipe.stage_task.name, **recipe.stage_task.kwargs())
    task.setup(
        train_images=train_all.images,
        test_images=test_images,
        image_encoder=encoder,
        cache_root=cache_dir,
        device=str(dev),
    )
    loss_fn = create("loss", recipe.loss.name, **recipe.loss.kwargs()).to(dev)
    text_t = None
    if needs_text(loss_fn):
        text_t = torch.as_tensor(text_embeddings(encoder, train_all.images, tcfg.text_prompt, cache_dir)).to(dev)

    info = train_all.info
    n_chans, n_times = int(train_all.eeg.shape[1]), int(train_all.eeg.shape[2])
    torch.manual_seed(seed)
    if where.stage == "finetune":
        assert cell.pretrain_key is not None  # a finetune cell always names its pretrain cell (Cell checks it)
        model, _ = load_encoder(
            Path(results_dir) / "checkpoints" / f"{cell.pretrain_key}.pt",
            device="cpu",
            expect_cell_key=cell.pretrain_key,
        )
        grow_subject(model, int(where.test_subject))  # type: ignore[arg-type]
    else:
        model = build_encoder(
            recipe.backbone,
            n_chans=n_chans,
            n_times=n_times,
            sfreq=info.sfreq,
            ch_names=list(info.ch_names),
            image_dim=image_dim,
            subjects=list(where.train_subjects),
        )
    model = model.to(dev)

    train_d = to_device(norm(train.eeg), train.image_index, train.subject, dev)
    if val is not None and len(val):
        # one seeded shuffle: validation batches then mix images and subjects (with single trials, an image's
        # repetitions side by side would be each other's negatives in the contrastive validation loss)
        val = val.select(np.random.default_rng(seed).permutation(len(val)))
    val_d = to_device(norm(val.eeg), val.image_index, val.subject, dev) if val is not None and len(val) else None
    return PreparedCell(
        cell=cell,
        dataset=dataset,
        device=dev,
        seed=seed,
        model=model,
        loss_fn=loss_fn,
        task=task,
        encoder=encoder,
        train=train_d,
        val=val_d,
        image_emb=emb_t,
        text_emb=text_t,
        train_image_emb=np.asarray(train_emb),
        test_images=test_images,
        heldout=heldout,
        standardizer=standardizer,
        info=info,
        n_chans=n_chans,
        n_times=n_times,
        image_dim=image_dim,
        t_start=t_start,
        rng_state=torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state(),
    )


def train_prepared(prepared: PreparedCell, progress: ProgressFn | None = None) -> FitResult:
    """Train a prepared cell alone (:func:`fit` with its recipe's stage training and selection)."""
    recipe = prepared.cell.recipe
    return fit(
        prepared.model,
        prepared.loss_fn,
        prepared.train,
        prepared.val,
        prepared.image_emb,
        recipe.stage_training,
        seed=prepared.seed,
        selection=recipe.validation.selection,
        text_emb=prepared.text_emb,
        progress=progress,
    )


def finish_cell(
    prepared: PreparedCell,
    result: FitResult,
    *,
    results_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    show_embedding_progress: bool = False,
) -> CellResult:
    """Everything after a cell trained: the selected weights, the task's own fitting, the test split (loaded
    now, evaluated once), the checkpoint and the scores."""
    from eegbench.execution.embedding import embed_images
    from eegbench.execution.splits import only_images

    cell, model, task, encoder, dev = prepared.cell, prepared.model, prepared.task, prepared.encoder, prepared.device
    recipe, where, seed = cell.recipe, cell.placement, prepared.seed
    prep, vcfg = recipe.preparation, recipe.validation
    dataset, heldout, test_images, info = prepared.dataset, prepared.heldout, prepared.test_images, prepared.info
    n_chans, n_times, image_dim, standardizer = (
        prepared.n_chans,
        prepared.n_times,
        prepared.image_dim,
        prepared.standardizer,
    )
    train_d, val_d, train_emb = prepared.train, prepared.val, prepared.train_image_emb
    norm = prepared.normalise
    t_start = prepared.t_start
    if result.rng_state is not None:  # batched training: this cell's own RNG stream goes on where its training left it
        if dev.type == "cuda":
            torch.cuda.set_rng_state(result.rng_state, dev)
        else:
            torch.set_rng_state(result.rng_state)
    model.load_state_dict(result.state)
    task_model = model  # the encoder the task's test embeddings come from: the selected one or the task's tuned copy
    if task.needs_encoder:  # the task finetunes its own copy (with its head); the checkpoint keeps the selected one
        task_model = task.fit_encoder(model, train_d, val_d)
    elif task.needs_training_data:  # a probe on the selected encoder's training/validation embeddings
        task.fit(
            embed_eeg(model, train_d),
            train_d.image_index,
            embed_eeg(model, val_d) if val_d is not None else None,
            val_d.image_index if val_d is not None else None,
        )
    del train_d, val_d
    prepared.train = prepared.val = None  # type: ignore[assignment]  # free the device memory early

    # --- the test split: loaded and evaluated once, after training --------------------------------------------
    # a subject-aware model meets an unseen test subject (LOSO pretrain): its input layer starts as the
    # backbone's default for a new subject (the mean of the trained ones), decided before any test data is read
    for s in where.test_subjects:
        grow_subject(model, int(s))
        grow_subject(task_model, int(s))  # a no-op when it is the model itself
    if heldout is None:
        test = load_subjects(dataset, where.test_subjects, "test", prep_options(prep, "test", seed))
        test_emb = embed_images(
            encoder, test.images, cache_root=cache_dir, device=str(dev), progress=show_embedding_progress
        )
    else:  # the held-out training images' trials of the test subjects, prepared as test trials
        test = only_images(
            load_subjects(dataset, where.test_subjects, "train", prep_options(prep, "test", seed)), heldout, test_images
        )
        test_emb = np.asarray(train_emb)[heldout]
    check_finite_eeg(test, "test")
    test_d = to_device(norm(test.eeg), test.image_index, test.subject, dev)
    eeg_emb = embed_eeg(task_model, test_d)
    scores = task.evaluate(
        eeg_emb, torch.as_tensor(np.array(test_emb, dtype=np.float32), device=dev), test_d.image_index, test_d.subject
    )

    # the subjects the backbone is built with: a finetuned subject-aware model has the pretrain ones plus its own
    built_for = list(where.pretrain_train_subjects if where.stage == "finetune" else where.train_subjects)
    if model.takes_subject and isinstance(model.backbone, GrowsSubjects):
        built_for = [int(s) for s in model.backbone.subjects]  # trained ones plus any added for testing
    ckpt = save_checkpoint(
        Path(results_dir) / "checkpoints" / f"{cell.key}.pt",
        model,
        cfg=cell.config,
        cell_key=cell.key,
        n_chans=n_chans,
        n_times=n_times,
        sfreq=info.sfreq,
        ch_names=list(info.ch_names),
        image_dim=image_dim,
        subjects=built_for,
        standardizer=standardizer,
    )
    describe = dataset.describe() or {}
    context = {
        "dataset": recipe.dataset.name,
        "synthetic": bool(describe.get("synthetic", False)),
        "test_split": prep.test_split,
        "n_way": int(scores[0].n_way) if scores else len(test_images),
        "train_averaging": prep.train_averaging,
        "test_averaging": prep.test_averaging,
        "window": [round(float(info.tmin), 4), round(float(info.tmax), 4)],
        "channels": list(info.ch_names),
        "n_times": n_times,
        "sfreq": float(info.sfreq),
        "standardize": bool(prep.standardize),
        "selection": vcfg.selection,
        "val_fraction": float(vcfg.fraction),
        "val_by": vcfg.by,
        "image_encoder": encoder.fingerprint,
        "image_encoder_random_init": bool(encoder.random_init) if isinstance(encoder, ImageEncoder) else False,
    }
    if heldout is not None:  # which held-out images: rows of another fraction or seed are another test set
        fraction, heldout_seed = heldout_draw(prep)
        context.update(heldout_fraction=fraction, heldout_seed=heldout_seed)
    return CellResult(
        scores=list(scores),
        context=context,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        wall_seconds=time.perf_counter() - t_start,
        samples_per_second=result.samples_seen / result.train_seconds if result.train_seconds > 0 else 0.0,
        device=str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        checkpoint=str(ckpt),
        image_encoder_fingerprint=encoder.fingerprint,
        history=result.history,
        head=model.head_kind,
    )


# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def save_checkpoint(
    path: Path,
    model: EEGEncoder,
    *,
    cfg: Mapping[str, Any],
    cell_key: str,
    n_chans: int,
    n_times: int,
    sfreq: float | None,
    ch_names: list[str],
    image_dim: int,
    subjects: list[int],
    standardizer: Standardizer | None = None,
) -> Path:
    """Write the encoder's weights with what rebuilds it (loadable with ``weights_only=True``), atomically.

    The payload records the head kind (``"head"``) so :func:`load_encoder` rebuilds the same model.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "cell_key": cell_key,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "backbone": json.dumps(cfg.get("backbone"), sort_keys=True),
        "config": json.dumps(cfg, sort_keys=True, default=str),
        "n_chans": int(n_chans),
        "n_times": int(n_times),
        "sfreq": float(sfreq) if sfreq else 0.0,
        "ch_names": list(ch_names),
        "image_dim": int(image_dim),
        "subjects": [int(s) for s in subjects],
        "head": str(model.head_kind),
        "standardizer": _plain(standardizer.as_dict()) if standardizer is not None else {},
        "versions": {"eegbench": str(__version__), "torch": str(torch.__version__)},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_encoder(
    path: str | os.PathLike[str], device: str = "cpu", expect_cell_key: str | None = None
) -> tuple[EEGEncoder, dict[str, Any]]:
    """Rebuild a trained EEG encoder from a checkpoint (``torch.load(weights_only=True)``).

    Returns ``(model, meta)`` with the model in eval mode; ``meta`` has ``config`` (the cell's resolved config),
    ``ch_names``, ``n_times``, ``sfreq``, ``image_dim``, ``subjects``, ``head`` (the engine's head kind) and
    ``standardizer`` (numpy arrays), so new EEG can be prepared the same way before ``model(x)``.

    ``expect_cell_key``: the key of the cell that must have written the checkpoint (a finetune's pretrain cell);
    a checkpoint of another recipe (another backbone, data or training) is refused before it is built. Every
    unreadable, unsafe or foreign file is one line naming it (a :class:`~eegbench.errors.DataError`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {str(path)!r} not found (run its pretrain cell first)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise DataError(f"checkpoint {str(path)!r} is {load_failure(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(
            f"checkpoint {str(path)!r} is not an eegbench encoder checkpoint (format "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})"
        )
    if expect_cell_key is not None and payload.get("cell_key") != expect_cell_key:
        try:
            theirs = json.loads(payload["backbone"]).get("name", "?")
        except Exception:
            theirs = "?"
        raise DataError(
            f"checkpoint {str(path)!r} was written by cell {str(payload.get('cell_key'))[:12]} (backbone "
            f"{theirs!r}), not by this finetune's pretrain cell {expect_cell_key[:12]}: another recipe's "
            f"weights; remove it and run the pretrain cell again (--only key={expect_cell_key[:12]})"
        )
    try:
        backbone = json.loads(payload["backbone"])
        # checkpoints written before the head kind was stored always had the Linear head
        head = str(payload.get("head", "linear"))
        model = build_encoder(
            backbone,
            n_chans=payload["n_chans"],
            n_times=payload["n_times"],
            sfreq=payload["sfreq"] or None,
            ch_names=payload["ch_names"],
            image_dim=payload["image_dim"],
            subjects=payload["subjects"],
            head=head,
        )
        model.load_state_dict(payload["state_dict"])
        meta = {
            k: payload[k]
            for k in ("cell_key", "n_chans", "n_times", "sfreq", "ch_names", "image_dim", "subjects", "versions")
        }
        meta["head"] = head
        meta["config"] = json.loads(payload["config"])
        meta["standardizer"] = {
            k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in payload["standardizer"].items()
        }
    except EegbenchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:  # a damaged or hand-edited payload
        raise DataError(
            f"checkpoint {str(path)!r} does not rebuild its encoder ({one_line(exc, 200)}); "
            "run its cell again with --force"
        ) from None
    model.eval()  # ready to embed: dropout off, BatchNorm on its running statistics
    model.to(device)
    return model, meta
