"""Training speed side by side: a seed-style loop, eegbench's single cell and eegbench's batched cells.

Run (from the repository root)::

    python benchmarks/perf/train_speed.py --size ci                    # CPU, well under a minute on 2 cores
    python benchmarks/perf/train_speed.py --size seed --device cuda    # the seed's configuration, one GPU
    options: --ks 2,4,8,16  --epochs N  --warmup N  --repeats N  --trials N  --batch-size N  --workers N
             --amp auto|bf16|fp16|off  --compile  --batch-cells force|auto  --threads N
             --paths seed-style,single,parallel,batched  --processes 2  --json out.json

One process (the parallel path forks K), one synthetic data set (random EEG trials, random image-embedding
targets; no dataset files), the same model (``resnet1d`` built with ``eegbench.create`` under the engine's
``EEGEncoder`` head), the same ``clip`` loss and AdamW, measured as training samples per second:

``seed-style``
    written here for comparison, in the shape of the seed's training loop: a ``torch.utils.data.Dataset`` that
    holds the raw trials (100 samples for the seed) and linearly interpolates one trial to ``n_times`` in every
    ``__getitem__`` (so on every epoch), a ``DataLoader`` (batch size, ``shuffle``, ``drop_last`` as the
    seed; ``--workers`` loader processes), fp16 autocast with a grad scaler on CUDA (off on CPU) and
    ``loss.item()`` read on the host every step.
``eegbench single``
    ``eegbench.execution.engine.fit`` on ``to_device`` splits of the trials interpolated once (as eegbench's
    preparation cache holds them), with a ``Training`` config (``amp = "auto"``: bf16 on CUDA, float32 on CPU).
``eegbench parallel``
    K cells at once, each ``fit`` in its own single-threaded (forked) process, as the local executor's ``jobs``
    runs cells: aggregate samples/s from the first process's start to the last one's end (``--processes``,
    default the usable CPUs on a CPU device; none on a GPU).
``eegbench batched``
    ``eegbench.execution.batched.fit_batched`` with K members (seeds 0 … K-1) of that cell: K × the samples.
    ``--batch-cells force`` (the default) sets ``batch_cells = K`` so the batched step is measured even where
    it does not pay; ``auto`` lets ``fit_batched`` time one step first and refuse (the row gives its reason).

Each path first trains ``--warmup`` epochs (not timed: allocator, cuDNN autotuning, lazy optimiser state),
then ``--epochs`` epochs timed with ``time.perf_counter`` (``torch.cuda.synchronize`` around them on CUDA),
``--repeats`` times (the fastest is kept: on a shared machine load only slows a run down).
No validation split: only training is timed. Samples are trained samples (full batches; K × for K
members). The table gives each path's samples/s, the arithmetic rate that is (samples/s times the training
FLOPs of one sample, counted once with ``torch.utils.flop_counter``: read it against the device's peak), its
ratio to the seed-style loop and to the single cell,
and the process's CPU seconds over the timed span (wall seconds far above CPU seconds / threads mean other
processes held the cores); ``--json`` writes the same with the device, versions, threads, load, date and
command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import eegbench
from eegbench.errors import EegbenchError
from eegbench.execution.engine import DeviceSplit, EEGEncoder, fit, to_device
from eegbench.execution.resources import apply_thread_limit, resolve_device, usable_cpus
from eegbench.planning.recipe import Training

SCRIPT = "benchmarks/perf/train_speed.py"


@dataclass(frozen=True)
class Size:
    """One benchmark size: data shape, model, loss and training settings shared by every path."""

    n_chans: int
    raw_times: int  # the stored trial's length, interpolated to n_times (the seed: 100 -> 128)
    n_times: int
    trials: int
    image_dim: int
    batch_size: int
    filters: tuple[int, ...]
    kernel_size: int
    dropout: float
    temperature: float
    center: bool
    lr: float
    epochs: int
    warmup: int
    workers: int
    ks: tuple[int, ...] = (2, 4, 8, 16)


SIZES: dict[str, Size] = {
    # the quick spec's sizes (benchmarks/quick.toml): 17 x 64, filters 16..64, kernel 9, 32-d oracle latents
    "ci": Size(
        n_chans=17,
        raw_times=50,
        n_times=64,
        trials=512,
        image_dim=32,
        batch_size=64,
        filters=(16, 24, 32, 48, 64),
        kernel_size=9,
        dropout=0.1,
        temperature=0.07,
        center=False,
        lr=3e-3,
        epochs=2,
        warmup=1,
        workers=0,
    ),
    # the seed's recipe (benchmarks/things_loso.toml): 17 x 100 -> 128, batch 512, filters 64..320, kernel 17,
    # dropout 0.5, 768-d CLIP CLS targets, T = 0.04 with centring, lr 0.005; one subject's 16,540 training
    # images per epoch (a LOSO pretraining has 9 x 16,540 x 0.8 rows: 8x more of the same batches)
    "seed": Size(
        n_chans=17,
        raw_times=100,
        n_times=128,
        trials=16540,
        image_dim=768,
        batch_size=512,
        filters=(64, 128, 196, 256, 320),
        kernel_size=17,
        dropout=0.5,
        temperature=0.04,
        center=True,
        lr=5e-3,
        epochs=3,
        warmup=1,
        workers=8,  # the seed's --n_workers 8
    ),
}


# --------------------------------------------------------------------------------------------------
# data and model
# --------------------------------------------------------------------------------------------------
@dataclass
class Data:
    raw: torch.Tensor  # [trials, chans, raw_times] float32, on the host (what the seed-style Dataset reads)
    prepared: np.ndarray  # [trials, chans, n_times] float32: interpolated once (what eegbench trains on)
    emb: np.ndarray  # [images, image_dim] float32
    image_index: np.ndarray  # [trials] int64
    subject: np.ndarray  # [trials] int64


def interpolate_trials(x: torch.Tensor, n_times: int) -> torch.Tensor:
    """Linear interpolation of ``[..., chans, raw_times]`` onto ``n_times`` evenly spaced points (ends kept)."""
    if x.shape[-1] == n_times:
        return x
    return F.interpolate(x, size=n_times, mode="linear", align_corners=True)


def make_data(size: Size, seed: int = 0) -> Data:
    """Random EEG trials (one image per trial, as averaged repetitions give) and random image embeddings."""
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(size.trials, size.n_chans, size.raw_times, generator=gen)
    emb = torch.randn(size.trials, size.image_dim, generator=gen)
    prepared = torch.cat([interpolate_trials(raw[i : i + 4096], size.n_times) for i in range(0, size.trials, 4096)])
    return Data(
        raw=raw,
        prepared=prepared.numpy(),
        emb=emb.numpy(),
        image_index=np.arange(size.trials, dtype=np.int64),
        subject=np.ones(size.trials, dtype=np.int64),
    )


def make_model(size: Size, seed: int, device: torch.device) -> EEGEncoder:
    torch.manual_seed(seed)
    backbone = eegbench.create(
        "backbone",
        "resnet1d",
        n_chans=size.n_chans,
        n_times=size.n_times,
        filters=list(size.filters),
        kernel_size=size.kernel_size,
        dropout=size.dropout,
    )
    return EEGEncoder(backbone, size.image_dim).to(device)


def make_loss(size: Size, device: torch.device) -> torch.nn.Module:
    return eegbench.create("loss", "clip", temperature=size.temperature, center=size.center).to(device)


def training_flop_per_sample(size: Size, data: Data, device: torch.device) -> float:
    """Floating-point operations of one training sample (forward and backward of model and loss, counted by
    ``torch.utils.flop_counter`` on one batch): samples/s times this is the arithmetic rate a path reaches, to
    read against the device's peak."""
    from torch.utils.flop_counter import FlopCounterMode

    model, loss_fn = make_model(size, 0, device), make_loss(size, device)
    rows = np.arange(min(size.batch_size, len(data.prepared)))
    x = torch.from_numpy(data.prepared[rows]).to(device)
    target = torch.from_numpy(data.emb[data.image_index[rows]]).to(device)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x), target).backward()
    return counter.get_total_flops() / len(rows)


def training_cfg(size: Size, epochs: int, amp: str, compile_: bool, batch_cells: str | int = "auto") -> Training:
    """The stage's training settings; ``batch_cells`` an int makes ``fit_batched`` batch without first timing
    whether it pays ("auto" lets it refuse)."""
    return Training(
        epochs=int(epochs),
        batch_size=size.batch_size,
        lr=size.lr,
        min_lr=size.lr,
        weight_decay=0.1,
        optimizer="adamw",
        warmup_epochs=0,
        schedule="constant",
        amp=amp,
        compile=compile_,
        drop_last=True,
        batch_cells=batch_cells,
    )


# --------------------------------------------------------------------------------------------------
# the seed-style loop (written here for comparison)
# --------------------------------------------------------------------------------------------------
class SeedStyleTrials(torch.utils.data.Dataset):
    """Raw trials in memory; each ``__getitem__`` interpolates one trial to ``n_times`` and looks up its target."""

    def __init__(self, raw: torch.Tensor, image_index: np.ndarray, emb: np.ndarray, n_times: int):
        self.raw, self.image_index, self.emb, self.n_times = raw, image_index, torch.from_numpy(emb), n_times

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(self.raw[i][None], size=self.n_times, mode="linear", align_corners=True)[0]
        return x, self.emb[int(self.image_index[i])]


class SeedStyleLoop:
    """A DataLoader over :class:`SeedStyleTrials`, fp16 autocast + grad scaler on CUDA, ``loss.item()`` per step."""

    def __init__(self, size: Size, data: Data, device: torch.device, workers: int, seed: int = 0):
        self.device = device
        self.model = make_model(size, seed, device)
        self.loss_fn = make_loss(size, device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=size.lr, weight_decay=0.1)
        cuda = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        self.autocast = lambda: torch.autocast(device.type, dtype=torch.float16, enabled=cuda)
        self.loader = torch.utils.data.DataLoader(
            SeedStyleTrials(data.raw, data.image_index, data.emb, size.n_times),
            batch_size=size.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=cuda,
            generator=torch.Generator().manual_seed(seed),
        )
        self.losses: list[float] = []

    def epoch(self) -> int:
        """One epoch; returns the samples trained."""
        self.model.train()
        samples, running = 0, 0.0
        for x, y in self.loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.opt.zero_grad(set_to_none=True)
            with self.autocast():
                loss = self.loss_fn(self.model(x), y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            running += loss.item()  # the host reads the loss every step, as the seed's trainer logs it
            samples += len(x)
        self.losses.append(running / max(1, len(self.loader)))
        return samples


# --------------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, run: Callable[[], int], repeats: int = 1) -> tuple[int, float, float]:
    """``(samples, seconds, cpu_seconds)`` of ``run()`` (which returns the samples it trained), synchronised on
    CUDA; ``cpu_seconds`` is this process's CPU time over the same span (all its threads; not DataLoader worker
    processes). With ``repeats`` > 1
    the fastest of that many runs (a shared machine's load only ever slows a run down)."""
    best: tuple[int, float, float] | None = None
    for _ in range(max(1, repeats)):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        samples = run()
        _sync(device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or seconds < best[1]:
            best = (samples, seconds, cpu)
    assert best is not None
    return best


def measure_seed_style(
    size: Size, data: Data, device: torch.device, epochs: int, warmup: int, workers: int, repeats: int = 1
):
    loop = SeedStyleLoop(size, data, device, workers)
    for _ in range(warmup):
        loop.epoch()
    timed = _timed(device, lambda: sum(loop.epoch() for _ in range(epochs)), repeats)
    if not all(math.isfinite(v) for v in loop.losses):
        raise RuntimeError(f"seed-style loop: non-finite training loss {loop.losses}")
    return timed


def _splits(data: Data, device: torch.device) -> tuple[DeviceSplit, torch.Tensor]:
    return to_device(data.prepared, data.image_index, data.subject, device), torch.from_numpy(data.emb).to(device)


def measure_single(
    size: Size, data: Data, device: torch.device, epochs: int, warmup: int, amp: str, compile_: bool, repeats: int = 1
):
    train, emb = _splits(data, device)
    model, loss_fn = make_model(size, 0, device), make_loss(size, device)
    if warmup:
        fit(model, loss_fn, train, None, emb, training_cfg(size, warmup, amp, compile_), seed=0)
    cfg = training_cfg(size, epochs, amp, compile_)
    out: list[Any] = []

    def run() -> int:
        out.append(fit(model, loss_fn, train, None, emb, cfg, seed=len(out) + 1))
        _check_history("eegbench single", out[-1])
        return int(out[-1].samples_seen)

    return _timed(device, run, repeats)


def measure_batched(
    size: Size,
    data: Data,
    device: torch.device,
    k: int,
    epochs: int,
    warmup: int,
    amp: str,
    compile_: bool,
    repeats: int = 1,
    batch_cells: str = "force",
):
    from eegbench.execution.batched import Member, fit_batched

    cells: str | int = k if batch_cells == "force" else "auto"

    train, emb = _splits(data, device)  # one copy on the device, shared by the members
    models = [make_model(size, s, device) for s in range(k)]
    losses = [make_loss(size, device) for _ in range(k)]

    def members(offset: int) -> list[Any]:
        return [
            Member(model=m, loss_fn=lf, train=train, val=None, image_emb=emb, seed=s + offset)
            for s, (m, lf) in enumerate(zip(models, losses, strict=True))
        ]

    if warmup:
        fit_batched(members(0), training_cfg(size, warmup, amp, compile_, cells))
    cfg = training_cfg(size, epochs, amp, compile_, cells)
    calls = [0]

    def run() -> int:
        calls[0] += 1
        out = fit_batched(members(1000 * calls[0]), cfg)
        if len(out) != k:
            raise RuntimeError(f"fit_batched returned {len(out)} results for {k} members")
        for r in out:
            if isinstance(r, Exception):  # a member's failure (CellFailure) is returned, not raised
                raise RuntimeError(f"eegbench batched K={k}: a member failed: {r}")
            _check_history(f"eegbench batched K={k}", r)
        return sum(int(r.samples_seen) for r in out)

    return _timed(device, run, repeats)


def _parallel_worker(
    size: Size,
    data: Data,
    device: torch.device,
    seed: int,
    epochs: int,
    warmup: int,
    amp: str,
    repeats: int,
    start: Any,
    results: Any,
) -> None:
    """One of K processes of ``measure_parallel``: its own single-threaded cell, timed after all are warm."""
    torch.set_num_threads(1)
    try:
        train, emb = _splits(data, device)
        model, loss_fn = make_model(size, seed, device), make_loss(size, device)
        if warmup:
            fit(model, loss_fn, train, None, emb, training_cfg(size, warmup, amp, False), seed=seed)
        cfg = training_cfg(size, epochs, amp, False)
        spans = []
        for r in range(max(1, repeats)):
            start.wait()  # every process starts each timed run together
            t0, c0 = time.monotonic(), time.process_time()
            out = fit(model, loss_fn, train, None, emb, cfg, seed=seed + 1000 * (r + 1))
            _sync(device)
            _check_history(f"eegbench parallel (process {seed})", out)
            spans.append((int(out.samples_seen), t0, time.monotonic(), time.process_time() - c0))
        results.put((seed, spans))
    except BaseException as exc:  # reported by the parent, which would otherwise wait forever
        results.put((seed, f"{type(exc).__name__}: {exc}"))
        start.abort()


def measure_parallel(
    size: Size, data: Data, device: torch.device, k: int, epochs: int, warmup: int, amp: str, repeats: int = 1
):
    """K cells at once, each in its own single-threaded process (what the local executor's ``jobs`` does):
    aggregate samples over the wall span from the first process's start to the last one's end, per timed run;
    the fastest run is kept. Processes are forked (Linux; each sets one thread before any torch work)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(k), ctx.Queue()
    procs = [
        ctx.Process(
            target=_parallel_worker, args=(size, data, device, seed, epochs, warmup, amp, repeats, start, results)
        )
        for seed in range(k)
    ]
    for proc in procs:
        proc.start()
    try:
        spans = dict(results.get() for _ in procs)
    finally:
        for proc in procs:
            proc.join()
    failed = [v for v in spans.values() if isinstance(v, str)]
    if failed:
        raise RuntimeError(f"eegbench parallel K={k}: {failed[0]}")
    best: tuple[int, float, float] | None = None
    for r in range(max(1, repeats)):
        runs = [spans[seed][r] for seed in range(k)]
        samples = sum(x[0] for x in runs)
        seconds = max(x[2] for x in runs) - min(x[1] for x in runs)
        cpu = sum(x[3] for x in runs)
        if best is None or seconds < best[1]:
            best = (samples, seconds, cpu)
    assert best is not None
    return best


def _check_history(path: str, result: Any) -> None:
    bad = [h["train_loss"] for h in result.history if not math.isfinite(h["train_loss"])]
    if bad:
        raise RuntimeError(f"{path}: non-finite training loss {bad}")


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    return f"cpu ({_cpu_name()}, {usable_cpus()} usable CPUs)"


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value and base else None


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| path | K | samples/s | GFLOP/s | vs seed-style | vs single cell | samples | seconds | CPU seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["samples_per_s"] is None:
            lines.append(f"| {r['path']} | {r['k']} | {r['note']} | | | | | | |")
            continue
        ratios = [f"{x:.2f}x" if x is not None else "–" for x in (r["vs_seed_style"], r["vs_single"])]
        lines.append(
            f"| {r['path']} | {r['k']} | {r['samples_per_s']:,.0f} | {r['gflop_per_s']:,.1f} | {ratios[0]} | "
            f"{ratios[1]} | {r['samples']:,} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=SCRIPT, description="Training samples/s: seed-style loop vs eegbench single cell vs batched cells."
    )
    p.add_argument("--size", choices=sorted(SIZES), default="ci", help="ci: CPU-sized; seed: the seed's recipe (GPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("--ks", default=None, help="batched member counts, comma-separated (default 2,4,8,16)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per path (default by size)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up epochs per path (default 1)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per path; the fastest is kept (default 1)")
    p.add_argument("--trials", type=int, default=None, help="training trials (default by size)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default by size: ci 64, seed 512)")
    p.add_argument("--workers", type=int, default=None, help="seed-style DataLoader workers (ci 0, seed 8)")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="eegbench paths' amp")
    p.add_argument("--compile", action="store_true", help="eegbench paths with torch.compile (cfg.compile)")
    p.add_argument(
        "--batch-cells",
        default="force",
        choices=["force", "auto"],
        help="force: always batch (cfg.batch_cells = K); auto: fit_batched first times whether it pays and may refuse",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: this process's CPU share)")
    p.add_argument("--paths", default="seed-style,single,parallel,batched", help="which paths to run (comma-separated)")
    p.add_argument(
        "--processes",
        default=None,
        help="process counts of the parallel path, comma-separated (default: the usable CPUs, on a CPU device)",
    )
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    for name in ("epochs", "trials", "batch_size", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("warmup", "workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            p.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    for option, example, what in (("ks", "2,4,8,16", "member counts"), ("processes", "2,4", "process counts")):
        text = getattr(args, option)
        if text is None:
            continue
        try:
            counts = tuple(int(k) for k in text.split(",") if k.strip())
        except ValueError:
            p.error(f"--{option} {text!r}: expected comma-separated integers, e.g. {example}")
        if not counts or min(counts) < 1:
            p.error(f"--{option} {text!r}: expected {what} >= 1")
        setattr(args, option, counts)
    paths = {s.strip() for s in args.paths.split(",") if s.strip()}
    unknown = paths - {"seed-style", "single", "parallel", "batched"}
    if unknown:
        p.error(f"--paths: unknown {sorted(unknown)}; use seed-style, single, parallel, batched")
    args.paths = paths
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the measurements, print the table and return ``{"meta": ..., "rows": [...]}``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    size = SIZES[args.size]
    size = replace(
        size,
        epochs=args.epochs or size.epochs,
        warmup=size.warmup if args.warmup is None else args.warmup,
        trials=args.trials or size.trials,
        batch_size=args.batch_size or size.batch_size,
        workers=size.workers if args.workers is None else args.workers,
        ks=args.ks or size.ks,
    )
    if size.trials < size.batch_size:
        raise SystemExit(f"--trials {size.trials}: needs at least one full batch of {size.batch_size}")
    if args.size == "seed" and size.workers:
        size = replace(size, workers=min(size.workers, max(0, (os.cpu_count() or 1) - 1)))
    device = resolve_device(args.device)
    if args.processes is None:  # K single-threaded cells at once: a CPU's lever (a GPU is filled by batching)
        args.processes = (usable_cpus(),) if device.type == "cpu" and usable_cpus() > 1 else ()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        apply_thread_limit()
    data = make_data(size)

    meta = {
        "size": args.size,
        "device": describe_device(device),
        "torch": torch.__version__,
        "eegbench": eegbench.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", SCRIPT, *argv]),
        "config": {
            "n_chans": size.n_chans,
            "raw_times": size.raw_times,
            "n_times": size.n_times,
            "trials": size.trials,
            "batch_size": size.batch_size,
            "filters": list(size.filters),
            "kernel_size": size.kernel_size,
            "image_dim": size.image_dim,
            "epochs": size.epochs,
            "warmup": size.warmup,
            "repeats": args.repeats,
            "seed_style_workers": size.workers,
            "seed_style_amp": "fp16" if device.type == "cuda" else "off",
            "eegbench_amp": args.amp,
            "compile": bool(args.compile),
            "batch_cells": args.batch_cells,
            "parallel_processes": list(args.processes) if "parallel" in args.paths else [],
        },
    }
    print(
        f"# {meta['command']}\n# device {meta['device']} | torch {meta['torch']} | eegbench {meta['eegbench']} | "
        f"threads {meta['threads']} | load {meta['load_average']} | {meta['date']}\n"
        f"# {size.trials} trials of {size.n_chans} x {size.raw_times} -> {size.n_times}, batch {size.batch_size}, "
        f"resnet1d filters {list(size.filters)} kernel {size.kernel_size}, {size.image_dim}-d targets; "
        f"{size.warmup} warm-up + {size.epochs} timed epochs per path (fastest of {args.repeats})",
        flush=True,
    )

    flop = training_flop_per_sample(size, data, device)
    meta["train_flop_per_sample"] = flop
    print(f"# training cost {flop / 1e6:.1f} MFLOP per sample (forward + backward, torch.utils.flop_counter)")
    rows: list[dict[str, Any]] = []

    def record(path: str, k: int, measure: Callable[[], tuple[int, float, float]] | None, note: str = "") -> None:
        row: dict[str, Any] = {"path": path, "k": k, "samples": None, "seconds": None, "samples_per_s": None}
        if measure is not None:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                samples, seconds, cpu = measure()
            except torch.cuda.OutOfMemoryError:
                note = "skipped: out of device memory"
            except EegbenchError as exc:  # e.g. fit_batched's NotBatchable (fp16 has one loss scaler per model)
                note = f"skipped: {exc}"
            else:
                row.update(
                    samples=samples,
                    seconds=seconds,
                    cpu_seconds=cpu,
                    samples_per_s=samples / seconds if seconds > 0 else None,
                    gflop_per_s=samples * flop / seconds / 1e9 if seconds > 0 else None,
                )
                if device.type == "cuda":
                    row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        row["note"] = note
        rows.append(row)
        rate = f"{row['samples_per_s']:,.0f} samples/s" if row["samples_per_s"] else note
        print(f"  {path:<17} K={k:<3} {rate}", flush=True)

    epochs, warmup, amp, reps = size.epochs, size.warmup, args.amp, args.repeats
    if "seed-style" in args.paths:
        record("seed-style", 1, lambda: measure_seed_style(size, data, device, epochs, warmup, size.workers, reps))
    if "single" in args.paths:
        record(
            "eegbench single", 1, lambda: measure_single(size, data, device, epochs, warmup, amp, args.compile, reps)
        )
    if "parallel" in args.paths:
        for k in args.processes:
            record(
                "eegbench parallel",
                k,
                lambda k=k: measure_parallel(size, data, device, k, epochs, warmup, amp, reps),
            )
    if "batched" in args.paths:
        for k in size.ks:
            record(
                "eegbench batched",
                k,
                lambda k=k: measure_batched(
                    size, data, device, k, epochs, warmup, amp, args.compile, reps, args.batch_cells
                ),
            )

    seed_rate = next((r["samples_per_s"] for r in rows if r["path"] == "seed-style"), None)
    single_rate = next((r["samples_per_s"] for r in rows if r["path"] == "eegbench single"), None)
    for r in rows:
        r["vs_seed_style"] = _ratio(r["samples_per_s"], seed_rate)
        r["vs_single"] = _ratio(r["samples_per_s"], single_rate)
    print(format_table(rows), flush=True)
    report = {"meta": meta, "rows": rows}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
    return report


if __name__ == "__main__":
    main()
