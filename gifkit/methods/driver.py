"""The one driver every expansion method runs through: seeds in batches into an expansion folder, resumable.

:func:`expand` checks the run's arguments, lets the method prepare (:meth:`~gifkit.methods.base.ExpansionMethod.begin`),
then follows the run protocol of :class:`gifkit.io.runs.ExpansionRun`: one folder holds one run (``run.json``
records its settings, its seed images and the condition its bytes depend on); seeds are cut into batches of
``batch_size``, the unit of resume and of sharding (batch j runs on process ``j % num_processes``); a batch whose
part file and images exist is skipped; unreadable seeds are skipped and listed. For each batch it builds the jobs
(seed x variant, every random draw keyed by (seed, index, variant)), calls the method, writes the images and
commits the batch's metadata rows. Shard 0 folds the parts into ``metadata.csv`` once every shard is done, and the
method finishes (:meth:`~gifkit.methods.base.ExpansionMethod.end`). A resumed or sharded run writes the bytes one
uninterrupted run writes.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from gifkit.config import check_expand_args
from gifkit.core.prior import Job
from gifkit.core.rng import derive_seed, deterministic_kernels
from gifkit.io.datasets import seed_path
from gifkit.io.files import read_json
from gifkit.io.images import resize_square, to_pil
from gifkit.io.runs import ExpansionRun
from gifkit.io.store import RUN_FILE, SKIPPED_FILE
from gifkit.methods.base import ExpansionMethod, RunContext

__all__ = ["ExpandResult", "expand"]


@dataclass
class ExpandResult:
    """Summary of one :func:`expand` call (this process's share)."""

    out: Path
    written: int = 0
    existing: int = 0  # images already on disk (resume)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (seed index, reason)
    flagged: int = 0  # variants left unperturbed because the score was not finite
    div_flips: int = 0  # with div_diagnostics: gradient signs S_div flipped (this process's written images)
    div_entries: int = 0  # ... out of this many (z, b) gradient entries
    div_ratios: list = field(default_factory=list)  # ... and |grad S_div| / |grad of the rest| per variant
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.written if self.written else float("nan")

    def count(self, row: dict) -> None:
        """Add one created image's figures (its metadata row) to the totals."""
        self.flagged += int(row.get("flagged", 0))
        if "div_sign_flips" in row:
            self.div_flips += row["div_sign_flips"]
            self.div_entries += row["div_grad_entries"]
            self.div_ratios.append(row["div_grad_ratio"])

    def merge(self, other: "ExpandResult", overlapped: bool = False) -> None:
        """Add ``other``'s counts (the images written, their figures) and its I/O time: into ``io``, or, when it
        ran on a thread of its own beside the method (``overlapped``), into ``io_thread`` (``io`` then holds only
        the time the loop waited for the writing)."""
        self.written += other.written
        self.existing += other.existing
        self.flagged += other.flagged
        self.div_flips += other.div_flips
        self.div_entries += other.div_entries
        self.div_ratios += other.div_ratios
        self.timings["io_thread" if overlapped else "io"] = \
            self.timings.get("io_thread" if overlapped else "io", 0.0) + other.timings.get("io", 0.0)

    def summary(self) -> str:
        lines = [f"expansion in {self.out}: {self.written} written, {self.existing} already there, "
                 f"{len(self.skipped)} seeds skipped, {self.flagged} variants flagged (non-finite score)",
                 f"{self.seconds:.1f} s, " + (f"{self.seconds_per_image:.3f} s per written image "
                                                 if self.written else "nothing new to write ")
                 + "(" + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()) + ")"]
        if self.div_entries:
            med = float(np.nanmedian(self.div_ratios)) if self.div_ratios else float("nan")
            lines.append(f"S_div flipped {self.div_flips} of {self.div_entries} gradient signs "
                         f"({100 * self.div_flips / self.div_entries:.3g} %); median |grad S_div| / |grad rest| "
                         f"= {med:.3g}")
        lines += [f"  skipped seed {i}: {why}" for i, why in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more (see {SKIPPED_FILE})")
        return "\n".join(lines)


def _pil_images(images, output_size: int | None) -> list:
    """The created images as PIL images at ``output_size`` (bicubic; ``None``: as they are)."""
    if isinstance(images, torch.Tensor):
        return to_pil(images, output_size)
    return [resize_square(im, output_size) for im in images]


def expand(method: ExpansionMethod, dataset, out: str | Path, *, ratio: int | None = None, seed: int = 0,
           batch_size: int | str | None = None, limit: int | None = None, output_size: int | None = None,
           class_names: Sequence[str] | None = None, shard: tuple[int, int] = (0, 1),
           barrier: Callable[[], None] | None = None, progress: bool = True, overlap_io: bool = False,
           deterministic: bool = False):
    """Expand ``dataset`` K = ``ratio`` times with ``method`` into the expansion folder ``out``; resumes.

    ``dataset`` yields ``(PIL image, label)``; unreadable seeds are skipped and listed (in the result and in
    ``out/skipped.json``). ``ratio``: default the method's (a preset's ratio, else 5). ``batch_size``: seeds per
    batch (default the method's; ``"auto"``: sized from the free GPU memory where the method knows its memory,
    and a folder that holds a run keeps its batch size). ``limit`` takes the first seeds only and may grow on a
    later run into the same folder. ``output_size`` saves at that side (bicubic; default: as created).
    ``class_names``: default the method's. ``shard=(index, count)`` runs this process's batches only;
    ``barrier`` (e.g. accelerate's ``wait_for_everyone``) lets shard 0 finish once every shard is done.
    ``overlap_io``: the images are converted and written, and each batch committed, on a thread of its own while
    the method makes the next batch (at most two batches queued; the same bytes, the same resume; an error of the
    writing is raised here). ``deterministic``: deterministic CUDA kernels for the run
    (:func:`gifkit.core.rng.deterministic_kernels`), recorded in ``run.json``'s environment. Returns an
    :class:`ExpandResult` (what the method's ``end`` makes of it: ALIA adds its filtering).
    """
    with deterministic_kernels(deterministic):
        return _expand(method, dataset, out, ratio=ratio, seed=seed, batch_size=batch_size, limit=limit,
                       output_size=output_size, class_names=class_names, shard=shard, barrier=barrier,
                       progress=progress, overlap_io=overlap_io)


def _expand(method, dataset, out, *, ratio, seed, batch_size, limit, output_size, class_names, shard, barrier,
            progress, overlap_io):
    ratio = method.default_ratio if ratio is None else ratio
    checked = check_expand_args(ratio=ratio, batch_size=None if batch_size == "auto" else batch_size, limit=limit,
                                output_size=output_size, seed=seed)
    ratio, limit, output_size, seed = checked["ratio"], checked["limit"], checked["output_size"], checked["seed"]
    class_names = list(class_names if class_names is not None else method.class_names)
    ctx = RunContext(Path(out), dataset, class_names, ratio, seed, limit=limit, output_size=output_size,
                     shard=shard, barrier=barrier, progress=progress)
    folder = method.begin(ctx)
    if batch_size == "auto":
        old = read_json(Path(folder) / RUN_FILE, None, "an expansion run")
        batch_size = int(old["batch_size"]) if isinstance(old, dict) and "batch_size" in old else \
            method.auto_batch_size(ratio)
    ctx.batch_size = int(batch_size if batch_size is not None else method.default_batch_size)
    settings = {"method": method.name, "ratio": ratio, "seed": seed, "batch_size": ctx.batch_size,
                "output_size": output_size, **method.record()}
    with ExpansionRun(folder, dataset, class_names, settings, ratio=ratio, batch_size=ctx.batch_size, limit=limit,
                      shard=shard, barrier=barrier, environment=method.environment()) as run:  # owns the folder
        store, names = run.store, run.class_names
        result = ExpandResult(out=Path(folder), timings={k: 0.0 for k in (*method.stages, "io")})
        written = ExpandResult(out=Path(folder), timings={"io": 0.0})  # what the writing counts (maybe on a thread)

        def save(batch, made) -> None:  # the batch's images, then its metadata rows: resume sees it done
            t, rows = time.perf_counter(), []
            if made is not None:
                for job, pil, row in zip(made.jobs, _pil_images(made.images, output_size), made.rows):
                    rel = store.relpath(job.label, job.index, job.variant)
                    if store.save_image(rel, pil):
                        written.written += 1
                    else:
                        written.existing += 1
                    written.count(row)
                    rows.append({"file_name": rel, "label": job.label, "seed_index": job.index,
                                 "seed_path": seed_path(dataset, job.index), "variant": job.variant,
                                 "method": method.name, "random_seed": derive_seed(*job.key), "ratio": ratio, **row})
            run.commit(batch, rows)
            written.timings["io"] += time.perf_counter() - t

        writer = _Writer(save) if overlap_io else None
        start = time.perf_counter()
        try:
            for batch in run.pending(dataset, result, progress=progress, desc=f"{method.name} x{ratio}"):
                jobs = [Job(i, v, image, label, names[label], key=(seed, i, v))
                        for i, image, label in batch.items for v in range(ratio)]
                made = method(jobs) if jobs else None
                if made is not None:
                    for i, why in made.skipped:
                        batch.skip(i, why)
                    for name, s in made.seconds.items():
                        result.timings[name] = result.timings.get(name, 0.0) + s
                if writer is None:
                    save(batch, made)
                    continue
                t = time.perf_counter()
                if made is not None and isinstance(made.images, torch.Tensor):  # off the GPU before the next batch
                    made.images = made.images.detach().cpu()
                writer.submit(batch, made)  # waits while the queue is full
                result.timings["io"] += time.perf_counter() - t
        finally:
            if writer is not None:
                t = time.perf_counter()
                writer.close()  # the queued batches are written (also after an error here), the writer's error raised
                result.timings["io"] += time.perf_counter() - t
        result.merge(written, overlapped=writer is not None)
        result.seconds = time.perf_counter() - start
        run.finish()
    return method.end(ctx, result)


class _Writer:
    """One thread that runs ``save(*item)`` for every submitted item, in order, ``depth`` items queued at most.
    Its first error stops the writing (the items after it are dropped) and is raised in the caller's thread, once,
    by the next :meth:`submit` or by :meth:`close`."""

    def __init__(self, save: Callable, depth: int = 2):
        self.save, self.error, self.raised = save, None, False
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._work, name="gifkit-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.save(*item)
                except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                    self.error = e

    def submit(self, *item) -> None:
        self._raise()
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None and not self.raised:
            self.raised = True
            raise self.error
