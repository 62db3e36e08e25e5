"""One folder holds one run: the settings record, resume and shards.

:func:`matching_record` is the one compare-settings-then-resume step of gifkit: an expansion's ``run.json``,
a training run's ``result.json`` and checkpoint, a fine-tuned model, the mini VAE prior and a study cell all
record the settings that made them and are reused only by a run with the same settings.
:class:`ExpansionRun` is the protocol every expansion method follows in a store folder; its ``run.json``
also records which seed images it expands (:func:`gifkit.io.datasets.seed_fingerprint`) and the condition
its bytes depend on (:func:`run_environment`), so that a resume never mixes other data or other numerics.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from gifkit.errors import Damaged, Refused
from gifkit.io.datasets import data_folders, dataset_labels, seed_fingerprint
from gifkit.io.files import read_json
from gifkit.io.images import BadImage
from gifkit.io.owner import FolderClaim, digest, own_file, read_made, remove_own, write_own
from gifkit.io.store import CLASSES, PARTS, RUN_FILE, SKIPPED_FILE, ExpansionStore, adopt_legacy, \
    describe_difference, has_outputs, proven_record, read_classes

__all__ = ["normalized", "settings_diff", "matching_record", "LIBRARIES", "run_environment", "check_output_folder",
           "Batch", "ExpansionRun"]


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


# ----------------------------------------------------------------------------- what the bytes depend on

# the libraries whose versions can change an expansion's bytes (distribution names)
LIBRARIES = ("gifkit", "torch", "numpy", "pillow", "diffusers", "transformers", "open_clip_torch", "timm")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _dtypes(objects: Sequence[Any]) -> list[str]:
    """The parameter dtypes of the torch modules in ``objects`` and one level inside them (a prior's
    pipeline components, a classifier's model)."""
    found: set[str] = set()

    def add(m: Any) -> None:
        if isinstance(m, torch.nn.Module):
            found.update(str(p.dtype).replace("torch.", "") for p in m.parameters())

    for obj in objects:
        if obj is None:
            continue
        add(obj)
        inner = getattr(obj, "__dict__", {})
        for value in list(inner.values()):
            add(value)
            components = getattr(value, "components", None)
            if isinstance(components, dict):
                for c in components.values():
                    add(c)
    return sorted(found)


def run_environment(device: str | torch.device | None = None, models: Sequence[Any] = (), *,
                    threads: bool = True, libraries: Sequence[str] = LIBRARIES) -> dict:
    """The condition an expansion's bytes depend on, recorded in ``run.json``: the device (``cpu`` with the
    machine and its vector instructions, or the CUDA device's name, compute capability and CUDA / cuDNN
    versions), the parameter dtypes of ``models``, the CPU thread count (``torch.get_num_threads()``, which
    changes the order of floating-point sums), whether torch's deterministic algorithms are on, and the
    versions of ``libraries``. Runs under the same condition write the same bytes; a resume under another
    one is refused. ``threads=False`` leaves the thread count out (methods that do not use torch kernels)."""
    env: dict[str, Any] = {}
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda":
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            major, minor = torch.cuda.get_device_capability(index)
            env["device"] = {"type": "cuda", "name": torch.cuda.get_device_name(index),
                             "capability": f"{major}.{minor}", "cuda": torch.version.cuda,
                             "cudnn": torch.backends.cudnn.version()}
        else:
            cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
            env["device"] = {"type": dev.type, "machine": platform.machine(), "cpu_capability": cap}
        env["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        if env["deterministic_algorithms"]:  # --deterministic (gifkit.core.rng.deterministic_kernels)
            env["deterministic"] = {"warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
                                    "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
                                    "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                                    "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    if models:
        env["dtypes"] = _dtypes(models)
    if threads:
        env["threads"] = torch.get_num_threads()
    env["versions"] = {name: _version(name) for name in libraries}
    return normalized(env)


def _flat(d: Any, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _environment_diff(old: dict, new: dict) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [f"{k} {a.get(k)} there, {b.get(k)} here" for k in settings_diff(a, b)]


def check_output_folder(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse (:class:`~gifkit.errors.Refused`) an output folder that is an existing file, or that is,
    lies inside or contains one of the input folders ``inputs`` (after resolving symlinks): gifkit never
    writes into a user's dataset. Returns ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Refused(f"output folder {out} exists and is not a folder: give another --out")
    real = Path(os.path.realpath(out))
    for d in inputs:
        d_real = Path(os.path.realpath(d))
        if real == d_real or d_real in real.parents or real in d_real.parents:
            how = "is" if real == d_real else ("lies inside" if d_real in real.parents else "contains")
            raise Refused(f"output folder {out} {how} the input data {d}; gifkit never writes into a dataset "
                          f"(its next load would count the generated images as seeds): give an --out outside it")
    return out


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
    """The protocol every expansion method follows in a store folder (GIF priors, augmentations, ALIA, ...), run by
    the one driver, :func:`gifkit.methods.expand`, which checks the run arguments (ratio, batch size, limit, output
    size) before it.

    * one process owns the folder (one per shard for a sharded run) from construction until :meth:`finish`
      or :meth:`close` (:class:`~gifkit.io.owner.FolderClaim`; freed as well when the process exits): another
      run, or a second process for the same shard, is refused while it runs; the claim of a run that died is
      recognised and the folder resumed;
    * one folder holds one run: ``run.json`` records ``settings``, the seed images
      (:func:`~gifkit.io.datasets.seed_fingerprint`) and the condition the bytes depend on (``environment``,
      see :func:`run_environment`); a later run with other settings, other seeds or under another condition
      is refused, naming what differs (``limit`` may grow, so it is not a setting). A folder whose run wrote
      nothing yet (a failed start) does not bind: its records are replaced (only those gifkit can prove it
      wrote, :func:`~gifkit.io.store.proven_record`). Images, metadata or records that no trustworthy
      ``run.json`` vouches for (missing, damaged, incomplete, changed) are refused, never adopted;
    * the output folder may not be, lie in or contain the dataset's folders (or ``inputs``), nor hold
      symlinks on the way (:func:`check_output_folder`, :class:`~gifkit.io.store.ExpansionStore`);
    * seeds ``0 .. n-1`` (``n = min(limit, len(dataset))``) are cut into batches of ``batch_size``; batch ``j``
      belongs to shard ``j % count`` of ``shard=(index, count)``: :attr:`batches` are this process's;
    * a batch is the unit of resume (:meth:`done`) and of skip lists (:meth:`save_skipped`); a batch with a
      seed skipped earlier (unreadable then) is done again, so the seed is retried and the images already
      there are kept;
    * :meth:`finish` lets shard 0 fold the skip lists into ``skipped.json`` and the parts into ``metadata.csv``
      once every shard is done (``barrier``: e.g. accelerate's ``wait_for_everyone``).
    """

    def __init__(self, out: str | os.PathLike, dataset: Dataset, class_names: Sequence[str], settings: dict, *,
                 ratio: int, batch_size: int, limit: int | None = None, shard: tuple[int, int] = (0, 1),
                 barrier: Any = None, environment: dict | None = None, inputs: Sequence[str | os.PathLike] = ()):
        self.class_names = list(class_names)
        self.labels = dataset_labels(dataset)
        bad = sorted({y for y in self.labels if not 0 <= y < len(self.class_names)})
        if bad:
            raise ValueError(f"labels {bad[:10]} have no class name (there are {len(self.class_names)} class names)")
        n_seeds = len(self.labels) if limit is None else min(limit, len(self.labels))
        if n_seeds == 0:
            raise ValueError("the dataset has no seed images")
        self.out, self.ratio, self.index, self.count = Path(out), int(ratio), *shard
        self.barrier, self.dataset = barrier, dataset
        check_output_folder(self.out, [*data_folders(dataset), *inputs])
        self.settings = settings = normalized(settings)
        self.environment = normalized(environment or {})
        identity = digest(json.dumps([settings, self.class_names, self.count], sort_keys=True).encode())
        what = f"{settings.get('method', 'an expansion')}, shard {self.index + 1} of {self.count}"
        self.claim = FolderClaim(self.out, (self.index, self.count), identity, what)
        try:
            self._start(settings)
        except BaseException:
            self.claim.release()
            raise
        batches = [list(range(s, min(s + batch_size, n_seeds))) for s in range(0, n_seeds, batch_size)]
        self.batches = [b for j, b in enumerate(batches) if j % self.count == self.index]

    def _start(self, settings: dict) -> None:
        """Compare the folder with this run, then take it over (replacing a failed start's records) or resume."""
        problems, record, distrust = self._compare(settings)
        if distrust:
            raise Refused(distrust)
        if problems and has_outputs(self.out):
            raise Refused(f"{self.out} holds an expansion made with {' and with '.join(problems)}; adding to it "
                          f"would mix two runs: use another --out, or the same data, settings and condition to "
                          f"resume, or --force-new (gifkit.io.store.clear_store) to delete it and start over")
        self._sync()  # everyone has compared before shard 0 writes
        if problems and self.index == 0:  # a failed start left records but no images: they do not bind
            for name in (RUN_FILE, CLASSES, SKIPPED_FILE):
                if proven_record(self.out, name):
                    remove_own(self.out, name)
            record = None
        self._sync()
        if record is not None and self.index == 0:
            adopt_legacy(self.out)  # a folder of an older gifkit gets its manifest
        self.store = ExpansionStore(self.out, self.class_names)
        self.store.remove_stale_temps()
        self.known_skipped = set(self._skipped())
        if self.index == 0 and record is None:
            self._write_record(settings, self.known_skipped)
        self._sync()
        if self.index != 0 and record is None:  # shard 0 wrote the record: this process's condition must match
            now = read_json(own_file(self.out / RUN_FILE) or self.out / RUN_FILE, None, "the record of an expansion run")
            if now is None:  # shards run one after the other (no barrier): the first one records
                self._write_record(settings, self.known_skipped)
            diff = _environment_diff(now.get("environment", {}), self.environment) if now else []
            if diff:
                raise Refused(f"shard {self.index} runs under another condition than shard 0 ({'; '.join(diff)}); "
                              f"the shards' images would differ from one run's: run every process alike")

    def _trust(self) -> tuple[dict | None, str | None]:
        """``(run.json's record, None)`` when it is one gifkit wrote and can rely on; ``(None, why not)``."""
        path = self.out / RUN_FILE
        if own_file(path) is None:
            return None, "it has no run.json"
        try:
            record = read_json(path)
        except Damaged:
            return None, f"its run.json ({path}) is damaged (not valid JSON)"
        if not isinstance(record, dict):
            return None, f"its run.json ({path}) holds {json.dumps(record)[:20]} instead of a record"
        seeds = record.get("seeds")
        lacks = [k for k, ok in (("seeds", isinstance(seeds, dict) and {"n", "digest"} <= set(seeds)),
                                 ("environment", isinstance(record.get("environment"), dict))) if not ok]
        if lacks:
            return None, f"its run.json ({path}) lacks {' and '.join(lacks)}"
        if read_made(self.out) is not None and not proven_record(self.out, RUN_FILE):
            return None, f"its run.json ({path}) was changed after gifkit wrote it"
        return record, None

    def _compare(self, settings: dict) -> tuple[list[str], dict | None, str | None]:
        """What differs between the folder's record and this run (empty when nothing), the record, and why the
        folder is refused outright (files of an expansion, or records, that no trustworthy record vouches for)."""
        problems: list[str] = []
        record, why = self._trust()
        if why is not None:
            if has_outputs(self.out):
                return problems, None, (
                    f"{self.out} holds an expansion's images or metadata, but {why}: nothing says which data and "
                    f"settings made them, so gifkit neither adds to them nor deletes them. Give another --out "
                    f"(and move that folder's files away yourself if you no longer need them)")
            foreign = [n for n in (RUN_FILE, SKIPPED_FILE) if os.path.lexists(self.out / n)]
            if foreign:
                return problems, None, (f"{self.out}: {why}; gifkit does not overwrite {' or '.join(foreign)}, which "
                                        f"it cannot prove it wrote: give another --out, or remove it yourself")
        if own_file(self.out / CLASSES) is not None:
            old = read_classes(self.out)
            if old != self.class_names:
                if not proven_record(self.out, CLASSES):
                    return problems, None, (
                        f"{self.out / CLASSES} lists other classes ({describe_difference(old, self.class_names)}) "
                        f"and no record shows gifkit wrote it: give another --out")
                problems.append(f"another class list ({describe_difference(old, self.class_names)})")
        if record is None:
            return problems, None, None
        old = {k: v for k, v in record.items() if k not in ("seeds", "environment")}
        diff = settings_diff(old, settings)
        if diff:
            problems.append(f"other settings ({', '.join(diff)} differ)")
        seeds = record["seeds"]
        now = seed_fingerprint(self.dataset, exclude=seeds.get("skipped", []))
        if (now["n"], now["digest"]) != (seeds.get("n"), seeds.get("digest")):
            problems.append(f"other seed images ({seeds.get('n')} seeds with fingerprint {seeds.get('digest')} "
                            f"there, {now['n']} with {now['digest']} here)")
        env = record["environment"]
        diff = _environment_diff(env, self.environment)
        if diff:
            hint = ""
            if "threads" in {d.split(" ")[0] for d in diff}:
                hint = (f"; e.g. OMP_NUM_THREADS={env.get('threads')} or torch.set_num_threads("
                        f"{env.get('threads')}) restores the thread count")
            problems.append(f"another condition, so other bytes ({'; '.join(diff)}{hint})")
        return problems, record, None

    def _write_record(self, settings: dict, skipped: set[int]) -> None:
        seeds = {**seed_fingerprint(self.dataset, exclude=skipped), "skipped": sorted(skipped)}
        record = {**settings, "seeds": seeds, "environment": self.environment}
        write_own(self.out, RUN_FILE, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())

    def _sync(self) -> None:
        if self.barrier is not None:
            self.barrier()

    def _skip_parts(self) -> list[Path]:
        parts = self.out / PARTS
        return sorted(parts.glob("*.skipped.json")) if parts.is_dir() else []

    def _skipped(self) -> dict[int, str]:
        """``{seed index: reason}`` of the seeds skipped so far: ``skipped.json``, then the parts of batches
        committed since (a part lists its batch's seeds: those not skipped again were read this time)."""
        path = own_file(self.out / SKIPPED_FILE) or self.out / SKIPPED_FILE
        skipped = {int(i): str(why) for i, why in read_json(path, [], "the skipped seeds")}
        for p in self._skip_parts():
            part = read_json(own_file(p) or p, [], "a batch's skipped seeds")  # a symlink is refused
            if isinstance(part, dict):
                for i in part.get("seeds", []):
                    skipped.pop(int(i), None)
                part = part.get("skipped", [])
            skipped.update({int(i): str(why) for i, why in part})
        return skipped

    @staticmethod
    def batch_id(seeds: Sequence[int]) -> str:
        return f"{seeds[0]:06d}"

    def done(self, seeds: Sequence[int]) -> int:
        """The number of images of the batch already complete on disk (0 when it must be (re)done: also when
        one of its seeds was skipped before, so that it is retried)."""
        if any(i in self.known_skipped for i in seeds):
            return 0
        expected = [self.store.relpath(self.labels[i], i, v) for i in seeds for v in range(self.ratio)]
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
        """``.parts/<batch id>.skipped.json``: the batch's seeds and those skipped (written when some are, or
        when the batch retried seeds skipped before, so :meth:`finish` knows which were read this time)."""
        if skipped or any(i in self.known_skipped for i in seeds):
            self.store.write_skipped(self.batch_id(seeds), {"seeds": [int(i) for i in seeds],
                                                            "skipped": [[int(i), str(w)] for i, w in skipped]})

    def finish(self) -> None:
        """Shard 0, after every shard: skip lists into ``skipped.json`` (removed when none is left), the
        record's seed fingerprint brought up to date, the parts into ``metadata.csv``. Then the folder is given
        up (:meth:`close`)."""
        try:
            self._sync()
            if self.index == 0:
                parts = self._skip_parts()
                skipped = self._skipped()
                if skipped:
                    write_own(self.out, SKIPPED_FILE, (json.dumps(sorted(skipped.items()), indent=1) + "\n").encode())
                else:
                    remove_own(self.out, SKIPPED_FILE)
                record = read_json(self.out / RUN_FILE, {}, "the record of an expansion run")
                if (record.get("seeds") or {}).get("skipped") != sorted(skipped):
                    self._write_record(self.settings, set(skipped))
                for p in parts:
                    p.unlink()
                self.store.finalize()
            self._sync()
        finally:
            self.close()

    def close(self) -> None:
        """Give the output folder up without finishing (idempotent; :meth:`finish` calls it, so does leaving a
        ``with`` block and the garbage collector). A later run resumes what this one committed."""
        self.claim.release()

    def __enter__(self) -> "ExpansionRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
