"""Train many cells as one: K members of one recipe (other folds, seeds, ratios, held-out subjects) stacked into
one model and trained in one step each, each member exactly what it would be trained alone.

How (``torch.func``): the members' parameters and buffers are stacked (``stack_module_state``) and one
template module is called on each member's batch through ``functional_call`` under ``vmap``; vmap turns a
convolution over stacked weights into one grouped convolution, and batch-norm statistics stay per member (each
member's running buffers are its own slice, updated in place). The loss is vmapped the same way (a learnable
temperature is stacked too), and one backward over the sum of the members' losses gives each member its own
gradient.

Why each member is the same as alone (tested in float64 to 1e-8, ``tests/test_batched.py``):

- **data order**: each member draws its permutation from its own generator seeded with its seed, as
  :func:`eegbench.execution.engine.fit` does;
- **dropout**: alone, ``nn.Dropout`` draws its mask from the global RNG in forward order. Batched, every
  ``nn.Dropout`` of the template is replaced by :class:`MaskedDropout`, and before each step each member's masks
  are drawn from that member's own copy of the global RNG state, in the same order and shapes (recorded by one
  probe forward), the way ``torch.nn.functional.dropout`` draws them on the CPU. On CUDA the fused dropout kernel
  draws differently, so there a batched member sees other (equally distributed) masks than alone;
- **optimisation**: Adam/AdamW, the learning-rate schedule (its own, so a plateau cut in one member touches no
  other), gradient clipping (per member norm), early stopping and selection are per member; a member with fewer
  batches in an epoch (a smaller training ratio) simply takes no step while others finish theirs;
- **validation** runs on each member's own module (its slice copied back) with the engine's function.

A model whose training forward draws other randomness (a functional dropout, noise), calls one dropout module
twice, or does something ``vmap`` cannot batch is refused by :func:`fit_batched` with :class:`NotBatchable`
before any step; the engine then trains those cells one by one.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from eegbench.errors import CellFailure, EegbenchError
from eegbench.execution.engine import (
    CellResult,
    DeviceSplit,
    EpochSchedule,
    FitResult,
    PreparedCell,
    _autocast,
    _batches,
    _training,
    check_training_inputs,
    diverged,
    finish_cell,
    for_loss,
    needs_text,
    prepare_cell,
    train_prepared,
    validation_loss,
)
from eegbench.planning.recipe import Cell, Training

log = logging.getLogger("eegbench.engine")


class NotBatchable(EegbenchError):
    """The members cannot be trained as one model exactly (the engine trains them one by one)."""


@dataclass
class Member:
    """One cell's training, as :func:`eegbench.execution.engine.fit` takes it.

    ``rng_state``: the global RNG state the member's training starts from (``torch.get_rng_state()`` right
    after its model was built under ``torch.manual_seed(seed)``, as the engine does); ``None`` takes the
    state at the call.
    """

    model: nn.Module
    loss_fn: nn.Module
    train: DeviceSplit
    val: DeviceSplit | None
    image_emb: torch.Tensor
    seed: int
    text_emb: torch.Tensor | None = None
    rng_state: torch.Tensor | None = None


#: a member's end: its result, or the one-line failure that stopped it (divergence)
MemberEnd = FitResult | CellFailure


class MaskedDropout(nn.Module):
    """``nn.Dropout`` with its mask given from outside (buffer ``mask``, one slice per member under vmap)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.register_buffer("mask", torch.ones(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = self.get_buffer("mask")
        return x * mask


@dataclass
class _DropoutCall:
    name: str
    p: float
    shape: tuple[int, ...]  # one sample's shape (the batch dimension left out)
    order: tuple[int, ...]  # dimensions from the largest stride to the smallest (the mask's memory layout)
    dtype: torch.dtype


def _swap_dropouts(module: nn.Module) -> list[str]:
    """Replace every ``nn.Dropout`` (the exact class) in ``module`` by a :class:`MaskedDropout`; their names."""
    names = []
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) is nn.Dropout:
                setattr(child, attr, MaskedDropout(sub.p))
                names.append(f"{name}.{attr}" if name else attr)
    return names


def _stride_order(x: torch.Tensor) -> tuple[int, ...]:
    # empty_like keeps a dense tensor's strides, and bernoulli_ fills it in memory order: the mask's layout
    strides = x.stride()
    return tuple(sorted(range(x.dim()), key=lambda d: (-strides[d], d)))


def _draw_mask(call: _DropoutCall, batch: int, device: torch.device) -> torch.Tensor:
    """The mask ``F.dropout`` draws for ``batch`` samples: ``empty_like(x).bernoulli_(1 - p) / (1 - p)``."""
    full = (batch, *call.shape)
    noise = torch.empty([full[d] for d in call.order], dtype=call.dtype, device=device)
    noise.bernoulli_(1.0 - call.p)
    noise.div_(1.0 - call.p)
    inverse = [call.order.index(d) for d in range(len(full))]
    return noise.permute(inverse)


def _mask_drawer(calls: list[_DropoutCall], batch: int, device: torch.device) -> Callable[[], list[torch.Tensor]]:
    """Draws one step's masks, in forward order (run with a member's RNG state swapped in)."""
    return lambda: [_draw_mask(c, batch, device) for c in calls]


class _RngStates:
    """Each member's own copy of the global RNG (CPU, or the CUDA device's), swapped in to draw its masks."""

    def __init__(self, device: torch.device, states: Sequence[torch.Tensor | None]) -> None:
        self.device = device
        now = self._get()
        self.states = [s.clone() if s is not None else now.clone() for s in states]

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.get_rng_state()

    def _set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)

    def draw(self, member: int, fn: Callable[[], Any]) -> Any:
        outer = self._get()
        try:
            self._set(self.states[member])
            out = fn()
            self.states[member] = self._get()
        finally:
            self._set(outer)
        return out


def _record_dropouts(
    template: nn.Module, names: list[str], member: Member, batch: int, autocast: Any
) -> list[_DropoutCall]:
    """The dropout calls of one training forward, in order, with each input's per-sample shape and layout."""
    probe = copy.deepcopy(template).train()
    modules = dict(probe.named_modules())
    calls: list[_DropoutCall] = []

    def recorder(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if any(c.name == name for c in calls):
                raise NotBatchable(f"dropout {name!r} is called twice in one forward")
            calls.append(_DropoutCall(name, modules[name].p, tuple(x.shape[1:]), _stride_order(x), x.dtype))

        return hook

    handles = [modules[n].register_forward_pre_hook(recorder(n)) for n in names if modules[n].p > 0]
    try:
        with torch.no_grad(), autocast:
            rows = torch.arange(min(batch, len(member.train)), device=member.train.x.device)
            probe(member.train.x[rows], member.train.subject[rows])
    finally:
        for h in handles:
            h.remove()
    return calls


class _StackedAdam:
    """Adam/AdamW over stacked parameters (dimension 0 = member), stepping only the given members.

    The update is ``torch.optim.Adam``/``AdamW``'s, term for term, with each member's own learning rate and
    step count (a member that takes no step keeps its moments and count)."""

    def __init__(self, groups: list[tuple[dict[str, torch.Tensor], float]], cfg: Training, k: int) -> None:
        self.groups = groups
        self.decoupled = cfg.optimizer == "adamw"
        self.beta1, self.beta2 = float(cfg.betas[0]), float(cfg.betas[1])
        self.eps = float(cfg.eps)
        self.state = {
            id(p): (torch.zeros_like(p), torch.zeros_like(p)) for params, _ in groups for p in params.values()
        }
        device = next(p.device for params, _ in groups for p in params.values())
        self.steps = torch.zeros(k, dtype=torch.float64, device=device)

    @torch.no_grad()
    def step(self, members: torch.Tensor, lrs: torch.Tensor) -> None:
        self.steps[members] += 1
        step = self.steps[members]
        bias1 = 1 - self.beta1**step
        bias2_sqrt = (1 - self.beta2**step).sqrt()
        for params, weight_decay in self.groups:
            for p in params.values():
                if p.grad is None:
                    continue
                view = (-1,) + (1,) * (p.dim() - 1)
                lr = lrs.to(p.dtype).view(view)
                grad = p.grad[members]
                value = p[members]
                avg, avg_sq = (s[members] for s in self.state[id(p)])
                if weight_decay != 0:
                    if self.decoupled:
                        value = value * (1 - lr * weight_decay)
                    else:
                        grad = grad + weight_decay * value
                avg = avg.lerp(grad, 1 - self.beta1)
                avg_sq = avg_sq * self.beta2 + (1 - self.beta2) * grad * grad
                denom = avg_sq.sqrt() / bias2_sqrt.to(p.dtype).view(view) + self.eps
                value = value - (lr / bias1.to(p.dtype).view(view)) * (avg / denom)
                p.index_copy_(0, members, value)
                self.state[id(p)][0].index_copy_(0, members, avg)
                self.state[id(p)][1].index_copy_(0, members, avg_sq)


@torch.no_grad()
def _clip_per_member(tensors: list[torch.Tensor], members: torch.Tensor, max_norm: float) -> None:
    """``clip_grad_norm_`` for each member on its own gradient slices (norm over all its parameters)."""
    grads = [t.grad for t in tensors if t.grad is not None]
    if not grads:
        return
    sq = sum(g[members].reshape(len(members), -1).pow(2).sum(dim=1) for g in grads)
    coef = (max_norm / (torch.as_tensor(sq).sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g[members] = g[members] * coef.to(g.dtype).view((-1,) + (1,) * (g.dim() - 1))


@dataclass
class _Track:
    """One member's bookkeeping across epochs (what :func:`eegbench.execution.engine.fit` keeps in locals)."""

    schedule: Any
    gen: torch.Generator
    batches: list[tuple[int, int]]
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    done: bool = False


def fit_batched(
    members: Sequence[Member],
    cfg: Training | Mapping[str, Any],
    *,
    selection: str = "best-val",
    progress: Callable[[int, Mapping[str, Any]], None] | None = None,
    on_done: Callable[[int, MemberEnd], None] | None = None,
) -> list[MemberEnd]:
    """Train ``members`` as one stacked model; one :class:`FitResult` per member, as ``engine.fit`` gives alone.

    ``progress(i, record)`` after each of member ``i``'s epochs; ``on_done(i, end)`` as soon as member ``i``
    stopped (its last epoch, early stopping, or divergence: a :class:`~eegbench.errors.CellFailure`, which ends
    that member only). Refuses with :class:`NotBatchable` (before any step) what cannot be batched exactly;
    each member's ``model`` ends holding its final weights, like ``fit`` leaves its model.
    """
    from torch.func import functional_call, stack_module_state, vmap

    cfg = _training(cfg)
    if not members:
        return []
    if cfg.amp == "fp16":
        raise NotBatchable("fp16 training (its loss scaler is per model)")
    device = members[0].train.x.device
    k = len(members)
    for m in members[1:]:  # one architecture: the same parameter and buffer names and shapes
        for mine, theirs in ((members[0].model, m.model), (members[0].loss_fn, m.loss_fn)):
            shapes = {n: t.shape for n, t in (*mine.named_parameters(), *mine.named_buffers())}
            if shapes != {n: t.shape for n, t in (*theirs.named_parameters(), *theirs.named_buffers())}:
                raise NotBatchable("the members' models differ in their parameters (e.g. per-subject layers)")
    autocast, _ = _autocast(device, cfg.amp)
    with_text = needs_text(members[0].loss_fn)
    for m in members:
        check_training_inputs(m.train, m.val, m.image_emb, m.text_emb if with_text else None)

    template = copy.deepcopy(members[0].model)
    dropout_names = _swap_dropouts(template)
    loss_template = copy.deepcopy(members[0].loss_fn)
    bs = int(cfg.batch_size)
    calls = _record_dropouts(template, dropout_names, members[0], bs, autocast)
    template.train()
    loss_template.train()

    try:
        params, buffers = stack_module_state([m.model for m in members])
        loss_params, loss_buffers = stack_module_state([m.loss_fn for m in members])
    except RuntimeError as exc:  # e.g. models of different classes
        raise NotBatchable(str(exc).splitlines()[0]) from exc
    trainable = {n for n, p in members[0].model.named_parameters() if p.requires_grad}
    loss_trainable = {n for n, p in members[0].loss_fn.named_parameters() if p.requires_grad}
    for name, p in params.items():
        p.requires_grad_(name in trainable)
    for name, p in loss_params.items():
        p.requires_grad_(name in loss_trainable)
    opt = _StackedAdam(
        [
            ({n: params[n] for n in trainable}, float(cfg.weight_decay)),
            ({n: loss_params[n] for n in loss_trainable}, 0.0),
        ],
        cfg,
        k,
    )
    clipped = [params[n] for n in trainable] + [loss_params[n] for n in loss_trainable]

    def member_loss(
        p: dict[str, torch.Tensor],
        b: dict[str, torch.Tensor],
        lp: dict[str, torch.Tensor],
        lb: dict[str, torch.Tensor],
        x: torch.Tensor,
        s: torch.Tensor,
        target: torch.Tensor,
        text: torch.Tensor | None,
    ) -> torch.Tensor:
        with autocast:
            out = functional_call(template, (p, b), (x, s))
        args = (for_loss(out), target, text) if with_text else (for_loss(out), target)
        loss: torch.Tensor = functional_call(loss_template, (lp, lb), args)
        return loss

    # text embeddings are batched with the rest when the loss takes them, else no argument at all
    batched_loss = vmap(member_loss, in_dims=(0, 0, 0, 0, 0, 0, 0, 0 if with_text else None), randomness="error")
    rngs = _RngStates(device, [m.rng_state for m in members])
    if cfg.batch_cells in ("auto", True):  # batch only where it pays (it does not for every layer on every device)
        batched_s, alone_s = _step_seconds(
            batched_loss, members, calls, (params, buffers, loss_params, loss_buffers), bs
        )
        if batched_s > 0.8 * alone_s:
            raise NotBatchable(
                f"a batched step of {k} takes {batched_s * 1e3:.0f} ms, {k} steps alone {alone_s * 1e3:.0f} ms here"
            )

    def load_member(i: int) -> None:
        """Copy member ``i``'s slices into its own modules (for validation, selection and the end)."""
        with torch.no_grad():
            for src, module in ((params, members[i].model), (loss_params, members[i].loss_fn)):
                for name, p in module.named_parameters():
                    p.copy_(src[name][i])
            for src, module in ((buffers, members[i].model), (loss_buffers, members[i].loss_fn)):
                for name, b in module.named_buffers():
                    if name in src:
                        b.copy_(src[name][i])

    tracks = []
    for m in members:
        # the member's learning rate comes from the engine's own schedule on a stand-in optimiser (no parameters
        # of its own are stepped: _StackedAdam reads the rate); stepped once, without gradients, so torch's
        # schedulers do not warn that they stepped first
        dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
        schedule = EpochSchedule(dummy, cfg)
        dummy.step()
        gen = torch.Generator(device=device)
        gen.manual_seed(int(m.seed))
        tracks.append(_Track(schedule, gen, _batches(len(m.train), bs, drop_last=bool(cfg.drop_last))))
    ends: list[MemberEnd | None] = [None] * k

    def finish(i: int, end: MemberEnd) -> None:
        tracks[i].done = True
        ends[i] = end
        if on_done is not None:
            on_done(i, end)

    def step(group: list[int], rows: list[torch.Tensor]) -> list[torch.Tensor]:
        idx = torch.as_tensor(group, device=device)
        every = len(group) == k
        sub = {n: (t if every else t[idx]) for n, t in params.items()}
        sub_b = {n: t[idx].clone() for n, t in buffers.items()}
        lsub = {n: (t if every else t[idx]) for n, t in loss_params.items()}
        lsub_b = {n: t[idx] for n, t in loss_buffers.items()}
        if calls:
            masks = [rngs.draw(i, _mask_drawer(calls, len(r), device)) for i, r in zip(group, rows, strict=True)]
            for j, c in enumerate(calls):
                sub_b[f"{c.name}.mask"] = torch.stack([mm[j] for mm in masks])
        ms = [members[i] for i in group]
        x = torch.stack([m.train.x[r] for m, r in zip(ms, rows, strict=True)])
        s = torch.stack([m.train.subject[r] for m, r in zip(ms, rows, strict=True)])
        img_rows = [m.train.image_index[r] for m, r in zip(ms, rows, strict=True)]
        target = torch.stack([m.image_emb[ir] for m, ir in zip(ms, img_rows, strict=True)])
        text = None
        if with_text:
            text = torch.stack([m.text_emb[ir] for m, ir in zip(ms, img_rows, strict=True)])  # type: ignore[index]
        losses = batched_loss(sub, sub_b, lsub, lsub_b, x, s, target, text)
        for name, t in buffers.items():  # the batch-norm statistics each member updated, back in place
            t.index_copy_(0, idx, sub_b[name])
        torch.autograd.backward(losses.sum())
        if cfg.grad_clip > 0:
            _clip_per_member(clipped, idx, float(cfg.grad_clip))
        lrs = torch.as_tensor([tracks[i].schedule.lr for i in group], dtype=torch.float64, device=device)
        opt.step(idx, lrs)
        for t in clipped:
            t.grad = None
        return [losses[j].detach() for j in range(len(group))]

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # an operation without a vmap batching rule (braindecode's max-norm renorm) runs per member: slower, not
        # different; the timing probe above already decided it still pays
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
        for epoch in range(int(cfg.epochs)):
            live = [i for i in range(k) if not tracks[i].done]
            if not live:
                break
            lr_used = {i: tracks[i].schedule.lr for i in live}
            perms = {i: torch.randperm(len(members[i].train), generator=tracks[i].gen, device=device) for i in live}
            totals = {i: torch.zeros((), device=device) for i in live}  # as fit sums them
            for j in range(max(len(tracks[i].batches) for i in live)):
                by_size: dict[int, list[int]] = {}
                for i in live:
                    if j < len(tracks[i].batches):
                        start, stop = tracks[i].batches[j]
                        by_size.setdefault(stop - start, []).append(i)
                for group in by_size.values():
                    rows = [perms[i][tracks[i].batches[j][0] : tracks[i].batches[j][1]] for i in group]
                    try:
                        losses = step(group, rows)
                    except RuntimeError as exc:
                        if j == 0 and epoch == 0:  # vmap met an operation it cannot batch: before any update
                            raise NotBatchable(str(exc).splitlines()[0]) from exc
                        raise
                    for i, loss in zip(group, losses, strict=True):
                        totals[i] += loss
            for i in live:
                tr, m = tracks[i], members[i]
                train_loss = float((totals[i] / len(tr.batches)).item())
                load_member(i)
                val_loss = (
                    validation_loss(m.model, m.loss_fn, m.val, m.image_emb, bs, autocast, m.text_emb)
                    if m.val is not None
                    else math.nan
                )
                tr.epochs_run = epoch + 1
                bad = [
                    (what, value)
                    for what, value in (
                        ("training", train_loss),
                        ("validation", val_loss if m.val is not None else 0.0),
                    )
                    if not math.isfinite(value)
                ]
                if bad:
                    finish(i, diverged(tr.epochs_run, f"{bad[0][0]} loss = {bad[0][1]}", lr_used[i], cfg))
                    continue
                if m.val is not None and val_loss < tr.best_val:
                    tr.best_val, tr.best_epoch, tr.bad_epochs = val_loss, epoch, 0
                    if selection == "best-val":
                        tr.best_state = {n: v.detach().clone() for n, v in m.model.state_dict().items()}
                else:
                    tr.bad_epochs += 1
                tr.schedule.end_epoch(epoch, val_loss if m.val is not None else None)
                record = {
                    "epoch": tr.epochs_run,
                    "epochs": int(cfg.epochs),
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "lr": lr_used[i],
                }
                tr.history.append(record)
                seen = sum(stop - start for start, stop in tr.batches) * tr.epochs_run
                if progress is not None:
                    progress(i, {**record, "samples_seen": seen, "seconds": time.perf_counter() - t0})
                last = tr.epochs_run == int(cfg.epochs)
                stop_early = cfg.patience > 0 and m.val is not None and tr.bad_epochs >= cfg.patience
                if last or stop_early:
                    finish(i, _result(tr, m, selection, time.perf_counter() - t0, rngs.states[i]))
    return [e if e is not None else CellFailure("batched training ended without a result") for e in ends]


def _step_seconds(
    batched_loss: Callable[..., torch.Tensor],
    members: Sequence[Member],
    calls: list[_DropoutCall],
    stacked: tuple[dict[str, torch.Tensor], ...],
    batch_size: int,
) -> tuple[float, float]:
    """Seconds of one forward-backward of all members batched, and of the first member alone times K, on
    throwaway copies (no weight, buffer, optimiser state or RNG stream of any member changes); the better of two
    runs each, after a warm-up."""
    k = len(members)
    first = members[0]
    rows = torch.arange(min(batch_size, len(first.train)), device=first.train.x.device)
    x, s = first.train.x[rows], first.train.subject[rows]
    target = first.image_emb[first.train.image_index[rows]]
    text = first.text_emb[first.train.image_index[rows]] if first.text_emb is not None else None
    params, buffers, loss_params, loss_buffers = (
        {n: t.detach().clone().requires_grad_(t.requires_grad) for n, t in d.items()} for d in stacked
    )
    for c in calls:  # masks of ones: timing draws nothing from any member's RNG stream
        buffers[f"{c.name}.mask"] = torch.ones((k, len(rows), *c.shape), dtype=c.dtype, device=x.device)
    text_k = text.expand(k, *text.shape) if text is not None else None
    alone = copy.deepcopy(first.model).train()
    loss_fn = copy.deepcopy(first.loss_fn).train()

    def batched() -> None:
        losses = batched_loss(
            params,
            buffers,
            loss_params,
            loss_buffers,
            x.expand(k, *x.shape),
            s.expand(k, *s.shape),
            target.expand(k, *target.shape),
            text_k,
        )
        torch.autograd.backward(losses.sum())

    def one() -> None:
        out = for_loss(alone(x, s))
        torch.autograd.backward(loss_fn(out, target, text) if text is not None else loss_fn(out, target))

    def best(fn: Callable[[], None], runs: int = 2) -> float:
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            fn()  # warm-up
            times = []
            for _ in range(runs):
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                t0 = time.perf_counter()
                fn()
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                times.append(time.perf_counter() - t0)
        return min(times)

    return best(batched), k * best(one)


def _result(tr: _Track, m: Member, selection: str, seconds: float, rng_state: torch.Tensor) -> FitResult:
    state = tr.best_state
    best_epoch = tr.best_epoch
    if selection == "last" or state is None:
        state = {n: v.detach().clone() for n, v in m.model.state_dict().items()}
        best_epoch = tr.epochs_run - 1
    samples = sum(stop - start for start, stop in tr.batches) * tr.epochs_run
    return FitResult(state, tr.epochs_run, best_epoch + 1, tr.history, seconds, samples, rng_state=rng_state.clone())


def run_cells(
    cells: Sequence[Cell],
    *,
    results_dir: str | os.PathLike[str],
    on_result: Callable[[int, CellResult | Exception], object],
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: Callable[[int, Mapping[str, Any]], None] | None = None,
    show_embedding_progress: bool = False,
) -> None:
    """Run cells of one recipe (differing only in placement) trained together as one stacked model
    (:func:`fit_batched`), each with the result it would have alone.

    ``on_result(i, result_or_error)`` is called for each cell ``i`` as soon as it is finished: after its own
    last epoch or early stop, not the group's; a cell failing to prepare, diverging or failing to evaluate ends
    alone with its exception. A model that cannot be batched exactly trains its cells one by one, the same way.
    """
    paths = {"results_dir": results_dir, "cache_dir": cache_dir, "show_embedding_progress": show_embedding_progress}
    prepared: dict[int, PreparedCell] = {}
    for i, cell in enumerate(cells):
        try:
            prepared[i] = prepare_cell(cell, device=device, **paths)  # type: ignore[arg-type]
        except Exception as exc:  # one cell's failure is its result, not the group's
            on_result(i, exc)
    order = list(prepared)

    def finish(i: int, end: FitResult | Exception) -> None:
        done = prepared.pop(i)
        if isinstance(end, Exception):
            on_result(i, end)
            return
        try:
            result = finish_cell(done, end, **paths)  # type: ignore[arg-type]
        except Exception as exc:  # as above
            on_result(i, exc)
            return
        on_result(i, result)

    if len(order) > 1:
        first = prepared[order[0]].cell.recipe
        members = [
            Member(p.model, p.loss_fn, p.train, p.val, p.image_emb, p.seed, p.text_emb, p.rng_state)
            for p in (prepared[i] for i in order)
        ]
        try:
            fit_batched(
                members,
                first.stage_training,
                selection=first.validation.selection,
                progress=(lambda j, record: progress(order[j], record)) if progress is not None else None,
                on_done=lambda j, end: finish(order[j], end),
            )
            return
        except NotBatchable as why:  # refused before any step: nothing trained, each cell trains alone below
            log.info("%d cells of one recipe trained one by one: %s", len(order), why)
    for i in order:
        one = prepared[i]
        if one.device.type == "cuda":  # alone, training draws from the global RNG where the model build left it
            torch.cuda.set_rng_state(one.rng_state, one.device)
        else:
            torch.set_rng_state(one.rng_state)
        try:
            fitted: FitResult | Exception = train_prepared(
                one, functools.partial(progress, i) if progress is not None else None
            )
        except Exception as exc:  # as above
            fitted = exc
        finish(i, fitted)
