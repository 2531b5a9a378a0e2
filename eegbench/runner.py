"""Run a spec: spec → plan → executor → results store → results table (``eegbench run``'s parser is
:mod:`eegbench.cli.run`).

:class:`CellRunner` is the picklable callable every executor runs, here or in a worker process: it skips a
cell whose key is stored as done (unless forced), otherwise marks it running, trains and evaluates it
through :mod:`eegbench.execution.engine`, and writes its rows in one transaction (or marks it failed with one line).
:func:`run_spec` is the Python API behind ``eegbench.run`` and ``eegbench run``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eegbench.errors import EXIT_USER_ERROR, EegbenchError
from eegbench.errors import one_line as _one_line
from eegbench.interfaces import CellOutcome, Dataset
from eegbench.planning.recipe import COMPONENT_KINDS, Cell, Recipe

log = logging.getLogger("eegbench.runner")


class CellRunner:
    """Runs one cell and records it in ``<results_dir>/results.sqlite`` (picklable; the CellRunner contract).

    Attributes:
        results_dir: the results directory (database, checkpoints, logs).
        cache_dir: prepared-EEG and embedding cache (``None``: ``EEGBENCH_CACHE`` or the user default).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        force: recompute cells already stored.
        progress: optional in-process callback ``(event: str, cell, payload)``; dropped when pickled.

    Before training, the cell is claimed in the store (:meth:`eegbench.results.store.ResultStore.claim`): a cell
    another live process runs is not run twice but returned ``skipped`` with the note ``running elsewhere
    (host, pid N)`` (``force`` recomputes done cells, never live ones). While the cell trains, a
    background thread refreshes its heartbeat every ``HEARTBEAT_EVERY`` seconds, so other hosts can tell
    a live owner from a dead one.
    """

    def __init__(
        self,
        results_dir: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str] | None = None,
        device: str = "auto",
        force: bool = False,
        progress: Callable[[str, Any, Any], None] | None = None,
    ):
        self.results_dir = str(results_dir)
        self.cache_dir = str(cache_dir) if cache_dir else None
        self.device = device
        self.force = force
        self.progress = progress

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["progress"] = None  # display callbacks stay in the parent process
        return state

    def __call__(self, cell: Any) -> CellOutcome:
        return self.run_group([cell])[0]

    def groups(self, cells: Sequence[Any]) -> list[list[Any]]:
        """``cells`` in groups that may train as one stacked model: one recipe and stage (cells differing only in
        placement), at most the recipe's ``[train] batch_cells`` each (:mod:`eegbench.execution.batched`);
        cells order kept within a group, groups in order of their first cell. Batching never changes a result."""
        by_recipe: dict[tuple[str, str], list[Any]] = {}
        for cell in cells:
            recipe = cell.recipe if isinstance(cell, Cell) else None
            key = (recipe.recipe_key, cell.stage) if recipe is not None else (str(cell.key), "")
            by_recipe.setdefault(key, []).append(cell)
        out: list[list[Any]] = []
        for group in by_recipe.values():
            first = group[0]
            size = first.recipe.stage_training.max_batched_cells if isinstance(first, Cell) else 1
            out += [group[i : i + size] for i in range(0, len(group), size)]
        return out

    def worker_imports(self, cells: Sequence[Any]) -> list[str]:
        """Modules a worker process running ``cells`` imports: torch, the engine, and what the cells' components
        declare they import when built (``Component.imports``, e.g. braindecode's models)."""
        from eegbench.registry import get_component

        # torch._dynamo: torch's optimisers import it on their first construction (about 1.5 s)
        out = ["torch", "torch._dynamo", "eegbench.runner", "eegbench.execution.engine", "eegbench.execution.batched"]
        for cell in cells:
            if not isinstance(cell, Cell):
                continue
            for slot, ref in cell.recipe.components(stage=True):
                try:
                    imports = get_component(COMPONENT_KINDS[slot], ref.name).imports
                except EegbenchError:  # an unknown name fails its cell in its own words, later
                    continue
                out += [m for m in imports if m not in out]
        return out

    def run_group(self, cells: Sequence[Any]) -> list[CellOutcome]:
        """Run cells of one group (:meth:`groups`) trained together, each stored as soon as it finishes; one
        outcome per cell, in order. Each cell is skipped, claimed, recorded done or failed exactly as alone."""
        from eegbench.results.store import ResultStore

        store = ResultStore(self.results_dir)
        outcomes: dict[int, CellOutcome] = {}
        claimed: list[int] = []
        for i, cell in enumerate(cells):
            skipped = self._claim(store, cell)
            if skipped is not None:
                outcomes[i] = skipped
            else:
                claimed.append(i)
        if claimed:
            todo = [cells[i] for i in claimed]
            started = time.time()
            t0 = time.perf_counter()
            for cell in todo:
                self._emit("start", cell, None)
            recorded: dict[int, CellOutcome] = {}

            def record(j: int, end: Any) -> CellOutcome:
                recorded[j] = self._record(store, todo[j], end, started, t0)
                return recorded[j]

            with contextlib.ExitStack() as beating:
                for cell in todo:
                    beating.enter_context(store.heartbeating(cell.key))
                try:
                    self._train(todo, record)
                except KeyboardInterrupt:
                    for cell in todo:
                        store.mark_failed(cell.key, "interrupted")  # a cell already done stays done
                    raise
                except Exception as exc:
                    for j in range(len(todo)):
                        if j not in recorded:
                            record(j, exc)
            ended = [recorded[j] for j in range(len(todo))]
            for i, outcome in zip(claimed, ended, strict=True):
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(cells))]

    def _claim(self, store: Any, cell: Any) -> CellOutcome | None:
        """Claim ``cell`` in the store; the outcome ``skipped`` when it is done or another live process runs it."""
        if not self.force and store.is_done(cell.key):
            return CellOutcome(cell.key, "skipped")
        holder = store.claim(
            cell.key,
            force=self.force,
            spec_name=cell.spec_name,
            stage=cell.stage,
            fold=cell.fold,
            seed=cell.seed,
            training_ratio=cell.training_ratio,
            config=cell_config(cell),
        )
        if holder is None:
            return None
        if holder["status"] == "done":  # finished by another process since the check above
            return CellOutcome(cell.key, "skipped")
        note = f"running elsewhere ({holder.get('host') or '?'}, pid {holder.get('pid') or '?'})"
        log.info("cell %s skipped: %s", cell.label(), note)
        return CellOutcome(cell.key, "skipped", note)

    def _record(self, store: Any, cell: Any, end: Any, started: float, t0: float) -> CellOutcome:
        """Write a finished cell's rows in one transaction, or record its failure in one line; its outcome."""
        from eegbench.results.store import CellRecord

        if not isinstance(end, Exception):
            try:
                rows = result_rows(cell, end)
                store.write_cell(
                    CellRecord(
                        cell_key=cell.key,
                        rows=rows,
                        spec_name=cell.spec_name,
                        stage=cell.stage,
                        fold=cell.fold,
                        seed=cell.seed,
                        training_ratio=cell.training_ratio,
                        checkpoint=end.checkpoint,
                        config=cell_config(cell),
                        started_at=started,
                        recipe_key=rows[0]["recipe_key"] if rows else None,
                        pretrain_recipe_key=rows[0]["pretrain_recipe_key"] if rows else None,
                    )
                )
            except Exception as exc:
                end = exc
        if isinstance(end, Exception):
            message = _one_line(end)
            log.error("cell %s failed: %s", cell.label(), message, exc_info=not isinstance(end, EegbenchError))
            store.mark_failed(cell.key, message)
            # the user's input found wrong inside the cell (a data file, a checkpoint) is exit code 2, not 1
            user_error = isinstance(end, EegbenchError) and getattr(end, "exit_code", 2) == EXIT_USER_ERROR
            outcome = CellOutcome(cell.key, "failed", message, time.perf_counter() - t0, user_error=user_error)
            self._emit("end", cell, outcome)
            return outcome
        outcome = CellOutcome(cell.key, "done", None, time.perf_counter() - t0)
        top = {m: round(v, 4) for s in end.scores for m, v in s.metrics.items()} if len(end.scores) == 1 else {}
        log.info(
            "cell %s done in %.1fs (%d epochs, best %d) %s",
            cell.label(),
            outcome.seconds,
            end.epochs_run,
            end.best_epoch,
            top,
        )
        self._emit("end", cell, outcome)
        return outcome

    def _train(self, cells: Sequence[Any], record: Callable[[int, Any], CellOutcome]) -> None:
        """Train and evaluate ``cells`` (one alone, or a group as one stacked model); ``record(i, result or
        error)`` stores each as soon as it finished."""
        from eegbench.execution.batched import run_cells
        from eegbench.execution.engine import run_cell

        if len(cells) == 1:  # alone: the engine's single-cell path (the GPU fast path, torch.compile)
            cell = cells[0]
            epoch_cb = (lambda rec: self._emit("epoch", cell, rec)) if self.progress else None
            try:
                result: Any = run_cell(
                    cell, results_dir=self.results_dir, cache_dir=self.cache_dir, device=self.device, progress=epoch_cb
                )
            except Exception as exc:
                result = exc
            record(0, result)
            return
        run_cells(
            cells,
            results_dir=self.results_dir,
            cache_dir=self.cache_dir,
            device=self.device,
            on_result=record,
            progress=(lambda i, rec: self._emit("epoch", cells[i], rec)) if self.progress else None,
        )

    def _emit(self, event: str, cell: Any, payload: Any) -> None:
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(event, cell, payload)


#: libraries whose version changes what a component computes (recorded when the cell imported them)
_COMPONENT_LIBRARIES = {
    "open_clip": "open_clip_torch",
    "timm": "timm",
    "braindecode": "braindecode",
    "mne": "mne",
    "torchvision": "torchvision",
}


def cell_config(cell: Any) -> dict[str, Any]:
    """A cell's plain config for the ``cells`` table (a stand-in cell of an executor's test may have none)."""
    return dict(cell.config) if isinstance(cell, Cell) else {}


def _versions(recipe: Recipe | None = None) -> dict[str, str]:
    """eegbench, torch, numpy, python, the component libraries the cell used, and each component's package."""
    from importlib import metadata

    import numpy
    import torch

    from eegbench.registry import get_component
    from eegbench.version import __version__

    out = {
        "eegbench": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
    }
    for module, dist in _COMPONENT_LIBRARIES.items():
        if module in sys.modules:
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[dist] = metadata.version(dist)
    for slot, ref in recipe.components() if recipe is not None else ():
        try:
            dist = get_component(COMPONENT_KINDS[slot], ref.name).plugin
            if dist and dist not in out:
                out[dist] = metadata.version(dist)
        except Exception:
            pass
    return out


def result_rows(cell: Cell, result: Any) -> list[dict[str, Any]]:
    """One row per (test subject, metric) with the columns of :data:`eegbench.results.store.RESULT_COLUMNS`.

    ``recipe`` is the cell's recipe with the engine's head (what was computed); ``recipe_key`` and
    ``pretrain_recipe_key`` its keys, on which the leaderboard groups."""
    from eegbench.interfaces import stable_hash

    cfg = cell.config
    recipe = cell.recipe.with_head(result.head)
    recipe_dict, recipe_key, pretrain_recipe_key = recipe.as_dict(), recipe.recipe_key, recipe.pretrain_recipe_key
    context = dict(result.context)
    context_key = stable_hash(context)
    versions = _versions(cell.recipe)
    rows = []
    for score in result.scores:
        for metric, value in score.metrics.items():
            rows.append(
                {
                    "cell_key": cell.key,
                    "spec_name": cell.spec_name,
                    "spec_hash": cell.spec_hash,
                    "benchmark": cell.spec_name,
                    **{
                        col: value
                        for slot, ref in cell.recipe.components(stage=True)
                        for col, value in ((slot, ref.name), (f"{slot}_params", ref.kwargs()))
                    },
                    "image_encoder_fingerprint": result.image_encoder_fingerprint,
                    "protocol": cell.protocol,
                    "fold": cell.fold,
                    "test_subject": int(score.subject),
                    "train_subjects": list(cell.train_subjects),
                    "stage": cell.stage,
                    "training_ratio": float(cell.training_ratio),
                    "seed": int(cell.seed),
                    "context": context,
                    "context_key": context_key,
                    "metric": metric,
                    "value": float(value),
                    "chance": float(score.chance.get(metric, float("nan"))),
                    "epochs_run": int(result.epochs_run),
                    "best_epoch": int(result.best_epoch),
                    "wall_seconds": float(result.wall_seconds),
                    "samples_per_second": float(result.samples_per_second),
                    "device": result.device,
                    "versions": versions,
                    # the engine's head (part of the model, chosen from the backbone and the image width)
                    "config": {**cfg, "head": recipe.head},
                    "recipe": recipe_dict,
                    "recipe_key": recipe_key,
                    "pretrain_recipe_key": pretrain_recipe_key,
                }
            )
    return rows


# --------------------------------------------------------------------------------------------------
# progress display
# --------------------------------------------------------------------------------------------------
class _Display:
    """Live rich display: cells done/total (polled from the store, so worker processes count too) and the
    in-process cell's epoch, losses and ETA."""

    def __init__(
        self, store: Any, keys: list[str], quiet: bool, names: Mapping[str, str] | None = None, console: Any = None
    ):
        self.store, self.keys, self.quiet = store, keys, quiet
        self.names = dict(names or {})
        self._stop = threading.Event()
        self.progress = None
        if quiet:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
            console=console,
        )
        self.cells_task = self.progress.add_task("cells", total=len(keys), info="")
        self.epoch_task = self.progress.add_task("", total=1, info="", visible=False)

    def __enter__(self) -> _Display:
        if self.progress is not None:
            self.progress.start()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._refresh_cells()
            self.progress.update(self.epoch_task, visible=False)
            self.progress.stop()

    def _refresh_cells(self) -> None:
        if self.progress is None:
            return
        try:
            status = self.store.cell_status(self.keys)
        except Exception:
            return
        done = sum(1 for k in self.keys if status.get(k) == "done")
        failed = sum(1 for k in self.keys if status.get(k) == "failed")
        self.progress.update(self.cells_task, completed=done + failed, info=f"failed {failed}" if failed else "")

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self._refresh_cells()

    def __call__(self, event: str, cell: Any, payload: Any) -> None:
        if self.progress is None:
            return
        if event == "start":
            epochs = int(cell.recipe.stage_training.epochs) if isinstance(cell, Cell) else 0
            self.progress.reset(
                self.epoch_task, total=epochs, description=f"  {cell_name(cell, self.names)}", info="", visible=True
            )
        elif event == "epoch":
            val = payload["val_loss"]
            info = f"loss {payload['train_loss']:.3f}" + (f" val {val:.3f}" if val == val else "")
            self.progress.update(self.epoch_task, completed=payload["epoch"], info=info)
        elif event == "end":
            self._refresh_cells()


def cell_name(cell: Any, names: Mapping[str, str]) -> str:
    """A cell's label, led by its variant's name when the spec compares several."""
    variant = names.get(cell.key)
    return f"{variant} {cell.label()}" if variant else cell.label()


#: seconds between two progress lines of a running cell when the output is not a terminal
PROGRESS_EVERY_ENV = "EEGBENCH_PROGRESS_EVERY"
PROGRESS_EVERY = 8.0  # with the poll's 1 s tick: a line at least every ~9 s (logs show the run is alive)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PlainProgress:
    """Progress as plain lines (logs, pipes, ``nohup``, Slurm output): one line when a cell starts and one
    when it ends, and while it trains one line per ``every`` seconds (epoch, losses, samples/s, cell ETA;
    ``every = 0``: every epoch). A background thread polls the store so that cells run by worker processes
    (which cannot call back) are reported too: their start and end lines come from the store (a change no event
    reported within a poll tick), and when nothing was printed for ``every`` seconds it prints the cells done so
    far. Lines go to ``stream`` (stderr), flushed at once."""

    def __init__(
        self,
        store: Any,
        keys: list[str],
        names: Mapping[str, str] | None = None,
        *,
        every: float | None = None,
        stream: Any = None,
        cells: Sequence[Any] = (),
    ):
        self.store, self.keys = store, keys
        self.names = dict(names or {})
        self.cells = {c.key: c for c in cells}  # to name the cells worker processes run (from the store)
        if every is None:
            try:
                every = float(os.environ.get(PROGRESS_EVERY_ENV, PROGRESS_EVERY))
            except ValueError:
                raise EegbenchError(
                    f"{PROGRESS_EVERY_ENV}={os.environ[PROGRESS_EVERY_ENV]!r}: expected seconds, "
                    "e.g. 10 (0: a line every epoch)"
                ) from None
        self.every = max(0.0, every)
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self._last_line = self.t0
        self._last_epoch_line: dict[str, float] = {}
        self._started = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reported: dict[str, str] = {}  # the last status of each cell a line was printed for
        self._pending: dict[str, str] = {}  # store changes seen once, printed if no event reports them by the next tick

    def _print(self, text: str) -> None:
        with self._lock:
            self._last_line = time.perf_counter()
            with contextlib.suppress(OSError, ValueError):  # a closed pipe must not fail the run
                print(f"[{_duration(self._last_line - self.t0)}] {text}", file=self.stream, flush=True)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.cells:
            self._report_from_store()  # the last cells' ends (seen once, due now)
            self._report_from_store()

    def __enter__(self) -> PlainProgress:
        if self.cells:
            try:  # what was stored before the run is not news
                self._reported = dict(self.store.cell_status(self.keys))
            except Exception:
                self._reported = {}
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _report_from_store(self) -> None:
        """Start and end lines of cells that changed in the store with no event (run by worker processes)."""
        try:
            rows = self.store.cell_times(list(self.cells))
        except Exception:
            return
        with self._lock:
            changed = {
                k: r
                for k, r in rows.items()
                if r["status"] in ("running", "done", "failed") and r["status"] != self._reported.get(k)
            }
            due = {k: r for k, r in changed.items() if self._pending.get(k) == r["status"]}
            self._pending = {k: r["status"] for k, r in changed.items() if k not in due}
        for key, row in sorted(due.items(), key=lambda kv: kv[1]["finished_at"] or kv[1]["started_at"] or 0.0):
            cell = self.cells[key]
            if row["status"] == "running":
                self.__call__("start", cell, None)
                continue
            seconds = (row["finished_at"] or 0.0) - (row["started_at"] or row["finished_at"] or 0.0)
            if self._reported.get(key) is None and row["status"] == "done":  # ran between two ticks: its start first
                self.__call__("start", cell, None)
            self.__call__("end", cell, CellOutcome(key, row["status"], row["error"], max(0.0, seconds)))

    def _poll(self) -> None:
        tick = min(max(self.every / 4, 0.25), 1.0)
        while not self._stop.wait(tick):
            if self.cells:
                self._report_from_store()
            if self.every and time.perf_counter() - self._last_line >= max(self.every, 1.0):
                try:
                    status = self.store.cell_status(self.keys)
                except Exception:
                    continue
                counts = {s: sum(1 for k in self.keys if status.get(k) == s) for s in ("done", "failed", "running")}
                self._print(
                    f"cells: {counts['done']}/{len(self.keys)} done, {counts['running']} running"
                    + (f", {counts['failed']} failed" if counts["failed"] else "")
                )

    def __call__(self, event: str, cell: Any, payload: Any) -> None:
        name = cell_name(cell, self.names)
        if event in ("start", "end"):
            with self._lock:
                self._reported[cell.key] = "running" if event == "start" else payload.status
                self._pending.pop(cell.key, None)
        if event == "start":
            self._started += 1
            self._last_epoch_line[cell.key] = time.perf_counter()
            what = f"{int(cell.recipe.stage_training.epochs)} epochs; " if isinstance(cell, Cell) else ""
            self._print(f"start {name} ({what}cell {self._started} of {len(self.keys)} planned)")
        elif event == "epoch":
            now = time.perf_counter()
            last_epoch = payload["epoch"] >= payload["epochs"]
            if last_epoch or now - self._last_epoch_line.get(cell.key, 0.0) < self.every:
                return
            self._last_epoch_line[cell.key] = now
            val = payload.get("val_loss", float("nan"))
            text = f"  {name}: epoch {payload['epoch']}/{payload['epochs']} loss {payload['train_loss']:.3f}"
            text += f" val {val:.3f}" if val == val else ""
            seconds = float(payload.get("seconds") or 0.0)
            if seconds > 0:
                if payload.get("samples_seen"):
                    text += f", {payload['samples_seen'] / seconds:,.0f} samples/s"
                left = seconds / payload["epoch"] * (payload["epochs"] - payload["epoch"])
                text += f", ETA {_duration(left)}"
            self._print(text)
        elif event == "end":
            self._last_epoch_line.pop(cell.key, None)
            if payload.status == "failed":
                self._print(f"failed {name} after {_duration(payload.seconds)}: {payload.error}")
            else:
                self._print(f"done {name} in {payload.seconds:.1f}s")


# --------------------------------------------------------------------------------------------------
# run_spec
# --------------------------------------------------------------------------------------------------
def _resolve_dirs(spec: Any, results_dir: Any, cache_dir: Any) -> tuple[Path, Path]:
    from eegbench.paths import cache_dir as _cache_dir
    from eegbench.paths import results_dir as _results_dir

    return _results_dir(results_dir or spec.paths.results or None), _cache_dir(cache_dir or spec.paths.cache or None)


def _estimate_samples(plan: Any) -> dict[str, Any]:
    """Training images per subject of the train split and repetitions per training image, from metadata only.

    ``n_images`` is the dataset's ``declared_size("train")`` (known without reading or generating any file),
    else the length of its training image set (metadata on disk); None when neither can tell.
    ``repetitions`` comes from the dataset's optional ``repetitions(split) -> int | None`` (known without
    reading the EEG, e.g. from a synthetic twin's parameters); None when the dataset cannot tell.
    """
    try:
        from eegbench.planning.plan import build_dataset

        dataset = build_dataset(plan.cells[0])
    except Exception:
        return {"n_images": None, "repetitions": None}
    n_images = None
    counts: tuple[Callable[[], int | None], ...] = (
        lambda: dataset.declared_size("train"),
        lambda: len(dataset.image_set("train")),
    )
    for count in counts:
        try:
            value = count()
        except Exception:
            value = None
        if value:
            n_images = int(value)
            break
    reps = None
    if isinstance(dataset, Dataset):
        try:
            value = dataset.repetitions("train")
            reps = int(value) if value else None
        except Exception:
            reps = None
    return {"n_images": n_images, "repetitions": reps}


def trials_per_image(averaging: Any, repetitions: int | None) -> tuple[int, bool]:
    """Training trials one image yields under ``train_averaging``, and whether that count is exact.

    ``"all"`` averages the repetitions into one trial (exact). ``"none"`` keeps every repetition and an
    integer ``k`` yields one k-average per repetition, so both give ``repetitions`` trials per image; when
    the repetitions are unknown the count falls back to 1 (one per averaged image) and is not exact.
    """
    if averaging == "all":
        return 1, True
    if repetitions:
        return int(repetitions), True
    return 1, False


def plan_table(plan: Any, stored: Mapping[str, str]) -> Any:
    """The plan as a DataFrame: one row per cell with its labelled images, work estimate and stored status.

    ``train_images`` / ``val_images`` count the cell's labelled (subject, image) pairs on each side of its
    validation split (for a finetune cell, the held-out subject's images: together ``ratio`` of them), from
    the dataset's declared size (:func:`eegbench.execution.splits.budget_counts`, the engine's own arithmetic).
    ``samples`` counts training trials (training pairs × trials per image after ``train_averaging``);
    ``counted`` says what was counted: ``"trials"`` when exact, ``"averaged images (estimate)"`` when the
    data keeps repetitions apart but the dataset cannot tell how many without loading the EEG (a lower
    bound), ``"trials (estimate)"`` when the split's size depends on the data (validation by concept).
    ``work = samples × epochs``.
    """
    import pandas as pd

    from eegbench.execution.splits import budget_counts

    est = _estimate_samples(plan) if plan.cells else {"n_images": None, "repetitions": None}
    rows = []
    for c in plan.cells:
        vcfg = c.recipe.validation
        epochs = int(c.recipe.stage_training.epochs)
        per_image, exact = trials_per_image(c.recipe.preparation.train_averaging, est["repetitions"])
        n_train = n_val = samples = None
        split_exact = True
        if est["n_images"] is not None:
            n_train, n_val, split_exact = budget_counts(
                est["n_images"], len(c.train_subjects), c.training_ratio, float(vcfg.fraction), vcfg.by
            )
            samples = n_train * per_image
        counted = "averaged images (estimate)" if not exact else "trials" if split_exact else "trials (estimate)"
        rows.append(
            {
                **({"variant": plan.variants.get(c.key, "")} if getattr(plan, "variants", None) else {}),
                "key": c.key[:12],
                "stage": c.stage,
                "fold": c.fold,
                "seed": c.seed,
                "ratio": c.training_ratio,
                "train_subjects": len(c.train_subjects),
                "train_images": n_train,
                "val_images": n_val,
                "samples": samples,
                "counted": counted,
                "epochs": epochs,
                "work": samples * epochs if samples is not None else None,
                "stored": stored.get(c.key, "-"),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["n_images"] = est["n_images"]
    return table


def budget_lines(table: Any) -> list[str]:
    """One line per finetune ratio: the held-out subject's labelled images, split into training and validation."""
    if table.empty or table.attrs.get("n_images") is None:
        return []
    ft = table[(table["stage"] == "finetune") & table["train_images"].notna()].drop_duplicates("ratio")
    n = int(table.attrs["n_images"])
    return [
        f"finetune ratio {r.ratio:g}: {int(r.train_images) + int(r.val_images):,} of the held-out subject's {n:,} "
        f"training images labelled = {int(r.train_images):,} training + {int(r.val_images):,} validation"
        for r in ft.itertuples()
    ]


def results_frame(store: Any, keys: list[str]) -> Any:
    import pandas as pd

    from eegbench.results.store import RESULT_COLUMNS

    frames = [
        store.dataframe(f"cell_key IN ({','.join('?' * len(keys[i : i + 500]))})", keys[i : i + 500])
        for i in range(0, len(keys), 500)
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["id", *RESULT_COLUMNS])
    return pd.concat(frames, ignore_index=True).sort_values("id").reset_index(drop=True)


def summary_table(df: Any) -> Any:
    """Mean ± std over seeds per (stage, ratio, fold, test subject) with top-k columns and chance."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    g = df.groupby(["stage", "training_ratio", "fold", "test_subject", "metric"], sort=False)["value"]
    out = g.mean().unstack("metric")
    out.columns = list(out.columns)
    chance = (
        df[df["metric"] == "top1"]
        .groupby(["stage", "training_ratio", "fold", "test_subject"], sort=False)["chance"]
        .first()
    )
    out["chance@1"] = chance
    out["seeds"] = (
        df[df["metric"] == "top1"]
        .groupby(["stage", "training_ratio", "fold", "test_subject"], sort=False)["seed"]
        .nunique()
    )
    return out.reset_index()


def _print_summary(df: Any, console: Any) -> None:
    """The run's results table: percent with one decimal (as the leaderboard and README), pretrain first and
    without a ratio, finetune ratios ascending."""
    from rich.table import Table

    summary = summary_table(df)
    if summary.empty:
        console.print("no results stored for this spec")
        return
    table = Table(title="results (retrieval accuracy in %, mean over seeds)")
    metrics = [c for c in summary.columns if c.startswith("top")]
    for col in ["stage", "ratio", "fold", "subject", *metrics, "chance@1", "seeds"]:
        table.add_column(col, justify="right" if col not in ("stage", "fold") else "left")

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    stage_order = {"pretrain": 0, "finetune": 1}
    groups = summary.groupby(["stage", "training_ratio"], sort=False)
    for (stage, ratio), group in sorted(groups, key=lambda g: (stage_order.get(g[0][0], 2), g[0][0], g[0][1])):
        ratio_text = f"{100 * ratio:g} %" if stage != "pretrain" else ""
        for _, r in group.iterrows():
            table.add_row(
                stage,
                ratio_text,
                str(r["fold"]),
                str(r["test_subject"]),
                *[pct(r[m]) for m in metrics],
                pct(r["chance@1"]),
                str(r["seeds"]),
            )
        if len(group) > 1:
            table.add_row(
                stage,
                ratio_text,
                "mean",
                "",
                *[pct(group[m].mean()) for m in metrics],
                pct(group["chance@1"].mean()),
                "",
                style="bold",
            )
    console.print(table)


def _print_leaderboard(df: Any, store: Any, plan: Any, console: Any) -> None:
    """The ranked leaderboard of this run's cells (those of the spec's variants; not the whole store), as
    ``eegbench leaderboard`` renders it in Markdown: mean ± std, the paired test against each column's best
    and the spread over subjects and over seeds."""
    from eegbench.results.leaderboard import build
    from eegbench.results.report import render

    if df.empty:
        console.print("no results stored for this spec")
        return
    board = build(rows=df, reported=False)  # rows carry their recipe keys: no configs needed
    text = render(board, "md")
    # the identity block (hashes) is for the report file, not for the end of a run
    text = re.sub(r"<details>.*?</details>\n*", "", text, flags=re.S)
    console.print(text.rstrip(), markup=False, highlight=False, soft_wrap=True)


def run_spec(
    spec: Any,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    results_dir: Any = None,
    cache_dir: Any = None,
    device: str = "auto",
    force: bool = False,
    dry_run: bool = False,
    only: Iterable[str] | Mapping[str, Any] | None = None,
    executor: str | None = None,
    jobs: int | str | None = None,
    quiet: bool = False,
    progress: bool = False,
    verbose: bool = False,
) -> Any:
    """Run (or with ``dry_run`` just plan) a benchmark spec; return a pandas DataFrame.

    Silent by default (a failed or deferred cell still gets one line on stderr). ``progress=True`` (the
    CLI's default) shows progress and prints the results: a live display when stderr is a terminal, else
    plain lines on stderr (:class:`PlainProgress`; ``verbose``: a line every epoch); then the results table,
    and for a spec with ``[[variants]]`` the ranked leaderboard of its cells. ``quiet`` overrides ``progress``.

    The result is the stored rows of the plan's cells (one per cell × test subject × metric, columns of
    :data:`eegbench.results.store.RESULT_COLUMNS`); with ``dry_run`` the plan's cells with their work estimate and
    stored status. Every spec problem raises :class:`~eegbench.errors.EegbenchError` before any training.
    """
    from rich.console import Console
    from rich.markup import escape

    from eegbench.planning.plan import build_plan
    from eegbench.registry import create, get_component
    from eegbench.results.store import ResultStore

    show = progress and not quiet
    console = Console(stderr=False, quiet=not show)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and notebooks: do not truncate the results table
    if executor:  # the CLI's --executor is the spec key executor.name: --set executor.* params then apply to it
        if isinstance(overrides, Mapping):
            overrides = {**overrides, "executor.name": executor}
        else:
            overrides = [*(overrides or []), f"executor.name={json.dumps(executor)}"]
    plan = build_plan(spec, overrides)
    cells = plan.select(only)
    res_dir, cch_dir = _resolve_dirs(plan.spec, results_dir, cache_dir)
    if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
        raise EegbenchError(f"--device {device!r}: expected auto, cpu or cuda[:N]")

    name = plan.spec.executor.name
    params = dict(plan.spec.executor.params)
    if jobs is not None:
        if "jobs" not in get_component("executor", name).defaults:
            raise EegbenchError(
                f"--jobs applies to the local executor; executor {name!r} takes its parallelism from its "
                f"own parameters (see `eegbench info {name}`)"
            )
        params["jobs"] = jobs if jobs == "auto" else int(jobs)
    exe = create("executor", name, **params)

    if dry_run:
        stored = (
            ResultStore(res_dir, read_only=True).cell_status([c.key for c in cells])
            if (res_dir / "results.sqlite").exists()
            else {}
        )
        sub_plan = type(plan)(plan.spec, cells, plan.variants)
        table = plan_table(sub_plan, stored)
        if show:
            import pandas as pd

            with pd.option_context("display.max_rows", 500, "display.width", 200):
                console.print(
                    f"plan {plan.spec.name!r}: {len(cells)} cells "
                    f"({sum(1 for c in cells if stored.get(c.key) == 'done')} stored) -> {res_dir}"
                )
                shown = table.astype(object).where(table.notna(), "?")  # unknown until the data is there
                console.print(shown.to_string(index=False), markup=False, highlight=False)
                for line in budget_lines(table):
                    console.print(line, markup=False, highlight=False)
                work = table["work"].dropna()
                if len(work):
                    estimated = bool(len(table)) and (table["counted"] == "averaged images (estimate)").any()
                    by_concept = bool(len(table)) and (table["counted"] == "trials (estimate)").any()
                    console.print(
                        f"work: {int(work.sum()):,} sample-epochs "
                        f"({int(table.loc[table['stored'] != 'done', 'work'].fillna(0).sum()):,} to run)"
                        + (
                            " - an estimate per averaged image: the dataset cannot tell its repetitions "
                            "without loading the EEG, so kept repetitions are not counted"
                            if estimated
                            else ""
                        )
                        + (
                            " - validation by concept: its size depends on the concepts drawn, so the "
                            "counts are the image fraction's"
                            if by_concept
                            else ""
                        )
                    )
                else:
                    console.print("work: unknown until the dataset is available")
        return table

    from eegbench.paths import writable_dir
    from eegbench.planning.plan import build_dataset

    writable_dir(res_dir, "results directory", "choose another with --results, [paths] results or EEGBENCH_RESULTS")
    writable_dir(cch_dir, "cache directory", "choose another with --cache, [paths] cache or EEGBENCH_CACHE")
    log_path = _start_log(res_dir, plan.spec.name)
    root_logger = logging.getLogger("eegbench")
    try:
        # pre-flight: what would fail every cell fails here in one line, recorded in the log, before the
        # results database is created (a refused run leaves no empty store behind)
        try:
            if device != "auto":
                from eegbench.execution.resources import resolve_device

                resolve_device(device)  # a missing CUDA is one line now, not one failure per cell
            runner = CellRunner(res_dir, cch_dir, device=device, force=force)
            exe.start(_likely_to_run(cells, res_dir, force), runner)  # e.g. workers importing while data is made
            # the data must be there (or be generated) before any cell starts; a missing release is one line
            needed = sorted({s for c in cells for s in (*c.train_subjects, *c.test_subjects)})
            build_dataset(cells[0]).ensure_available(needed)
            if plan.cells[0].inputs.get("data") != input_identity_now(plan):
                plan = build_plan(spec, overrides)  # data just generated: cells keyed by the files as they now are
                cells = plan.select(only)
            keys = [c.key for c in cells]
            try:  # which cells still run (their encoders are checked below); read-only, nothing created yet
                stored = ResultStore(res_dir, read_only=True).cell_status(keys)
            except EegbenchError:  # no store, or one a concurrent run is creating: check every cell's encoder
                stored = {}  # (a foreign file is refused below, when the store is opened for writing)
            todo = [c for c in cells if force or stored.get(c.key) != "done"]
            # missing weights are one line now, not one failure per cell (the encoder is built again in each cell)
            for ref in sorted({c.recipe.image_encoder for c in todo}, key=lambda r: (r.name, json.dumps(r.kwargs()))):
                create("image-encoder", ref.name, **ref.kwargs())
        except Exception as exc:
            log.error(
                "spec %s (%s): pre-flight failed, nothing run: %s",
                plan.spec.name,
                plan.spec.source,
                _one_line(exc),
                exc_info=not isinstance(exc, EegbenchError),
            )
            raise
        store = ResultStore(res_dir)
        stored = store.cell_status(keys)
        todo = [c for c in cells if force or stored.get(c.key) != "done"]
        log.info(
            "spec %s (%s): %d cells, %d to run, results %s, device %s, executor %s %s",
            plan.spec.name,
            plan.spec.source,
            len(cells),
            len(todo),
            res_dir,
            device,
            name,
            params,
        )
        if show:
            console.print(
                f"[bold]{plan.spec.name}[/]: {len(cells)} cells, {len(cells) - len(todo)} stored, "
                f"{len(todo)} to run -> {res_dir}  (log {log_path})"
            )
        outcomes = []
        if todo:
            # what the results table (pandas) and the leaderboard's paired tests (scipy.stats) import, meanwhile:
            # seconds, on a core the parent leaves idle while its cells run (in workers, or in torch's kernels)
            _import_in_background(["pandas", *(["scipy.stats"] if show and plan.variants else [])])
            names = plan.variants
            if not show:
                display: Any = contextlib.nullcontext(None)
            elif verbose or not sys.stderr.isatty():
                display = PlainProgress(store, keys, names, every=0.0 if verbose else None, cells=cells)
            else:
                display = _Display(store, keys, False, names, console=Console(stderr=True))
            with display as reporter:
                runner.progress = reporter
                outcomes = exe.run(cells, runner)
        failed = [o for o in outcomes if o.status == "failed"]
        deferred = [o for o in outcomes if o.status == "skipped" and o.error]
        by_key = {c.key: c for c in cells}
        # failures and deferrals are printed even with --quiet (then on stderr): a quiet run still says what is missing
        notices = console if show else Console(stderr=True, width=max(console.width, 120))
        for o in deferred:
            msg = f"deferred: {by_key[o.key].label()}: {o.error}; its rows are stored when that run finishes"
            log.warning(msg)
            notices.print(f"[yellow]{escape(msg)}[/]", highlight=False, soft_wrap=True)
        for o in failed:
            msg = f"failed: {by_key[o.key].label()}: {o.error}"
            log.error(msg)
            notices.print(
                f"[red]{escape(msg)}[/]", highlight=False, soft_wrap=True
            )  # cell keys in [..] are text, not markup
        df = results_frame(store, keys)
        if show:
            if plan.variants:
                _print_leaderboard(df, store, plan, console)
            else:
                _print_summary(df, console)
        df.attrs["failed"] = [o.key for o in failed]
        df.attrs["failed_user_error"] = [o.key for o in failed if getattr(o, "user_error", False)]
        df.attrs["deferred"] = [o.key for o in deferred]
        df.attrs["results_dir"] = str(res_dir)
        df.attrs["log"] = str(log_path)
        return df
    finally:
        for h in list(root_logger.handlers):
            if getattr(h, "_eegbench_run_log", False):
                root_logger.removeHandler(h)
                h.close()


def _import_in_background(modules: Sequence[str]) -> None:
    """Import ``modules`` in a daemon thread; a failure is left for the import that needs the module to raise."""

    def load() -> None:
        for module in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    threading.Thread(target=load, name="eegbench-imports", daemon=True).start()


def _likely_to_run(cells: Sequence[Any], res_dir: Path, force: bool) -> list[Any]:
    """The cells a run will train, as far as the store tells before the data is checked (a read, nothing
    created): all of them when forced, when there is no store yet, or when it cannot be read."""
    if force or not (res_dir / "results.sqlite").exists():
        return list(cells)
    from eegbench.results.store import ResultStore

    try:
        stored = ResultStore(res_dir, read_only=True).cell_status([c.key for c in cells])
    except EegbenchError:
        return list(cells)
    return [c for c in cells if stored.get(c.key) != "done"]


def input_identity_now(plan: Any) -> str:
    from eegbench.planning.plan import input_identity

    return str(input_identity(plan.cells[0].config)["data"])


def _start_log(res_dir: Path, spec_name: str) -> Path:
    logs = res_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{spec_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    handler._eegbench_run_log = True  # type: ignore[attr-defined]
    root = logging.getLogger("eegbench")
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    return path
