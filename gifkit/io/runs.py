"""One folder holds one run: the settings record, resume and shards.

:func:`matching_record` is the one compare-settings-then-resume step of gifkit: an expansion's ``run.json``,
a training run's ``result.json`` and checkpoint, a fine-tuned model, the mini VAE prior and a study cell all
record the settings that made them and are reused only by a run with the same settings.
:class:`ExpansionRun` is the protocol every expansion method follows in a store folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from gifkit.io.datasets import dataset_labels
from gifkit.io.files import atomic_write_bytes, read_json
from gifkit.io.images import BadImage
from gifkit.io.store import PARTS, RUN_FILE, SKIPPED_FILE, ExpansionStore

__all__ = ["normalized", "settings_diff", "matching_record", "Batch", "ExpansionRun"]


def normalized(settings: Any) -> Any:
    """``settings`` as it reads back from JSON (tuples become lists, other objects their ``str``)."""
    return json.loads(json.dumps(settings, default=str))


def settings_diff(old: dict, new: dict) -> list[str]:
    """The keys whose values differ between two settings dicts (a key missing on one side differs)."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def matching_record(path: str | os.PathLike, settings: dict, *, key: str | None = None, what: str = "a run",
                    on_mismatch: str = "raise", hint: str = "use another folder, or the same settings") -> Any:
    """The JSON record at ``path`` if the settings it holds equal ``settings``; ``None`` if there is none.

    The record's settings are ``record[key]``, or the whole record with ``key=None``; both sides are compared
    as JSON (:func:`normalized`). A record with other settings raises ``ValueError`` naming the settings that
    differ and ``hint`` (``on_mismatch="raise"``), or gives ``None`` (``"ignore"``: the caller redoes the work).
    """
    if on_mismatch not in ("raise", "ignore"):
        raise ValueError(f"on_mismatch must be 'raise' or 'ignore', got {on_mismatch!r}")
    record = read_json(path, None, what)
    if record is None:
        return None
    old = record.get(key) if key is not None and isinstance(record, dict) else record
    new = normalized(settings)
    if old == new:
        return record
    if on_mismatch == "ignore":
        return None
    diff = settings_diff(old, new) if isinstance(old, dict) and isinstance(new, dict) else ["settings"]
    raise ValueError(f"{path} records {what} made with other settings ({', '.join(diff)} differ); {hint}")


@dataclass
class Batch:
    """One batch of seeds still to expand: ``items`` ``[(index, PIL image, label)]`` of the seeds that could be
    read, ``skipped`` ``[(index, reason)]`` of those that could not (a method adds the seeds it fails on)."""

    seeds: list[int]
    items: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def skip(self, index: int, reason: str) -> None:
        self.skipped.append((int(index), str(reason)))


class ExpansionRun:
    """The protocol every expansion method follows in a store folder (GIF priors, augmentations, ALIA, ...).

    * one folder holds one run: ``run.json`` records ``settings``; a later run with other settings is refused
      (``limit`` may grow, so it is not a setting);
    * seeds ``0 .. n-1`` (``n = min(limit, len(dataset))``) are cut into batches of ``batch_size``; batch ``j``
      belongs to shard ``j % count`` of ``shard=(index, count)``: :attr:`batches` are this process's;
    * a batch is the unit of resume (:meth:`done`) and of skip lists (:meth:`save_skipped`);
    * :meth:`finish` lets shard 0 fold the skip lists into ``skipped.json`` and the parts into ``metadata.csv``
      once every shard is done (``barrier``: e.g. accelerate's ``wait_for_everyone``).
    """

    def __init__(self, out: str | os.PathLike, dataset: Dataset, class_names: Sequence[str], settings: dict, *,
                 ratio: int, batch_size: int, limit: int | None = None, shard: tuple[int, int] = (0, 1),
                 barrier: Any = None):
        if int(ratio) != ratio or ratio < 1:
            raise ValueError(f"ratio (K images per seed) must be an integer >= 1, got {ratio}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.class_names = list(class_names)
        self.labels = dataset_labels(dataset)
        bad = sorted({y for y in self.labels if not 0 <= y < len(self.class_names)})
        if bad:
            raise ValueError(f"labels {bad[:10]} have no class name (there are {len(self.class_names)} class names)")
        n_seeds = len(self.labels) if limit is None else min(limit, len(self.labels))
        if n_seeds == 0:
            raise ValueError("the dataset has no seed images")
        self.out, self.ratio, self.index, self.count = Path(out), int(ratio), *shard
        self.barrier = barrier
        self.store = ExpansionStore(self.out, self.class_names)
        settings = normalized(settings)
        old = matching_record(self.out / RUN_FILE, settings, what="an expansion run",
                              hint="use another --out, or the same settings to resume")
        self._sync()  # everyone has compared before shard 0 writes
        if old is None and self.index == 0:
            atomic_write_bytes(self.out / RUN_FILE, (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode())
        self.known_skipped = {int(i) for i, _ in read_json(self.out / SKIPPED_FILE, [])}
        for p in self._skip_parts():
            self.known_skipped |= {int(i) for i, _ in json.loads(p.read_text())}
        batches = [list(range(s, min(s + batch_size, n_seeds))) for s in range(0, n_seeds, batch_size)]
        self.batches = [b for j, b in enumerate(batches) if j % self.count == self.index]

    def _sync(self) -> None:
        if self.barrier is not None:
            self.barrier()

    def _skip_parts(self) -> list[Path]:
        parts = self.out / PARTS
        return sorted(parts.glob("*.skipped.json")) if parts.is_dir() else []

    @staticmethod
    def batch_id(seeds: Sequence[int]) -> str:
        return f"{seeds[0]:06d}"

    def done(self, seeds: Sequence[int]) -> int:
        """The number of images of the batch already complete on disk (0 when it must be (re)done)."""
        expected = [self.store.relpath(self.labels[i], i, v) for i in seeds if i not in self.known_skipped
                    for v in range(self.ratio)]
        return len(expected) if expected and self.store.batch_done(self.batch_id(seeds), expected) else 0

    def pending(self, dataset: Dataset, result: Any, *, progress: bool = True, desc: str = "") -> Iterator[Batch]:
        """This process's batches still to do, their seeds read: the loop of every expansion method.

        A batch already complete on disk counts into ``result.existing`` and is not yielded; a seed that
        cannot be read (or is not a PIL image) goes to the batch's ``skipped``. After the caller has handled
        a batch (and :meth:`commit` it), its skipped seeds are added to ``result.skipped``. A progress bar
        counts images.
        """
        bar = tqdm(total=sum(len(b) for b in self.batches) * self.ratio, unit="img", disable=not progress,
                   desc=desc + (f" [{self.index + 1}/{self.count}]" if self.count > 1 else ""))
        try:
            for seeds in self.batches:
                existing = self.done(seeds)
                if existing:
                    result.existing += existing
                    bar.update(len(seeds) * self.ratio)
                    continue
                batch = Batch(list(seeds))
                for i in seeds:
                    try:
                        image, label = dataset[i]
                        if not isinstance(image, Image.Image):
                            raise BadImage(f"expected a PIL image, got {type(image).__name__}")
                    except (BadImage, OSError, ValueError) as e:
                        batch.skip(i, str(e))
                        continue
                    batch.items.append((i, image, int(label)))
                yield batch
                result.skipped += batch.skipped
                bar.update(len(seeds) * self.ratio)
        finally:
            bar.close()

    def commit(self, batch: Batch, rows: Sequence[dict]) -> None:
        """Record a finished batch: its skip list, then its metadata rows (``.parts/<batch id>.csv``)."""
        self.save_skipped(batch.seeds, batch.skipped)
        if rows:
            self.store.write_part(self.batch_id(batch.seeds), rows)

    def save_skipped(self, seeds: Sequence[int], skipped: Sequence[tuple[int, str]]) -> None:
        if skipped:
            (self.out / PARTS).mkdir(exist_ok=True)
            atomic_write_bytes(self.out / PARTS / f"{self.batch_id(seeds)}.skipped.json",
                               json.dumps(list(skipped)).encode())

    def finish(self) -> None:
        """Shard 0, after every shard: skip lists into ``skipped.json``, the parts into ``metadata.csv``."""
        self._sync()
        if self.index == 0:
            parts = self._skip_parts()
            skipped = {int(i): why for i, why in read_json(self.out / SKIPPED_FILE, [])}
            for p in parts:
                skipped.update({int(i): why for i, why in json.loads(p.read_text())})
            if skipped:
                atomic_write_bytes(self.out / SKIPPED_FILE,
                                   (json.dumps(sorted(skipped.items()), indent=1) + "\n").encode())
            for p in parts:
                p.unlink()
            self.store.finalize()
        self._sync()
