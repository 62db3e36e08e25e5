"""Studies: expand with any method, train on the result, tabulate (the engine of the result notebooks).

- :func:`run_grid` runs every dataset x method x seed cell: expand the training split with the method
  (:func:`gifkit.methods.create_method` + :func:`gifkit.methods.expand`; method ``"original"``: no expansion),
  then :func:`gifkit.train.loop.train` on original + expanded data, and returns one row per cell. Every
  expansion of a dataset trains the same number of update steps (the paper's protocol: the same epochs over sets
  expanded by the same ratio); the original set trains the preset's epochs over itself, as the official README
  does (``original_steps="epochs"``), or as many steps as the expansions take (``original_steps="equal"``,
  gifkit's equal-steps protocol, not the paper's). Finished cells are resumed. :class:`MethodCache` builds a
  method's models once for all its seeds and ablations.
- :func:`summarize` gives mean, sample standard deviation (ddof=1; 0 for one run) and n over seeds.

Layout of a grid in ``out``: ``<dataset>/<label>/seed_<s>/expanded/`` (the expansion, store format),
``<dataset>/<label>/seed_<s>/run/`` (the :func:`gifkit.train.loop.train` run, with ``cell.json``: the row and the
settings it came from; with ``train`` overrides the folder is named by them, e.g. ``run_arch=resnext50``, so that
several classifiers train on one expansion, as the paper's Tables 4 and 17 do); the ``original`` cells live in
``<dataset>/original/``, or, with equal steps, in ``<dataset>/original_as<r>x/`` (``r``: the ``steps_ratio``
they train). A folder re-run with other settings raises (nothing is overwritten).
Expansion seed and training seed are both ``s``, so the spread over seeds covers both randomness sources.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from gifkit.config import NO_HFLIP, get_profile
from gifkit.core.guidance import GuidanceConfig
from gifkit.io.files import read_json, write_json
from gifkit.io.runs import matching_record, normalized
from gifkit.methods import ExpansionMethod, Imagination, get_method
from gifkit.methods.gif_sd import PRESET_OF

__all__ = ["MethodCache", "run_grid", "summarize", "method_spec", "train_config", "ROW_COLUMNS", "ORIGINAL_STEPS",
           "shared_options"]

ROW_COLUMNS = ["dataset", "method", "seed", "accuracy", "accuracy_macro", "n_train", "expand_seconds",
               "train_seconds", "run_dir", "expanded_dir", "base_method", "accuracy_micro", "best_accuracy",
               "arch", "ratio", "total_steps"]
_STEP_FIELDS = frozenset(f.name for f in dataclasses.fields(GuidanceConfig))


def _key_value(v, ids: bool = True):
    """A setting as JSON: containers item by item; any other object by identity (``ids``, within a process) or
    by its type (in a record kept across runs)."""
    if isinstance(v, dict):
        return {str(k): _key_value(x, ids) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_key_value(x, ids) for x in v]
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    return f"<{type(v).__name__} {id(v)}>" if ids else f"<{type(v).__name__}>"


class MethodCache:
    """The method the grid built last (one entry), so the seeds and the ablations of one method share its models.

    A method is built again only when an option that defines its models changes; the options of the guided step
    (the :class:`~gifkit.core.guidance.GuidanceConfig` fields) give a variant sharing the models
    (:meth:`gifkit.methods.gif.Imagination.replace`). :func:`run_grid` keeps one cache for its whole grid.
    """

    def __init__(self):
        self._key = None
        self._method: ExpansionMethod | None = None

    def get(self, name: str, class_names, *, profile: str, device=None, options: dict | None = None) -> ExpansionMethod:
        cls = get_method(name)
        options = dict(options or {})
        step = {k: v for k, v in options.items() if k in _STEP_FIELDS} if issubclass(cls, Imagination) else {}
        models = {k: v for k, v in options.items() if k not in step}
        key = json.dumps([name, profile, list(class_names), str(device),
                          {k: _key_value(v) for k, v in sorted(models.items())}], sort_keys=True, default=str)
        if self._key != key:
            self._method = None
            self._method = cls.from_profile(class_names, profile=profile, device=device, **models)
            self._key = key
        return self._method.replace(**step) if step else self._method


def shared_options(name: str, options: dict, dataset=None, source: dict | None = None) -> dict:
    """The grid's options shared by every method (``expand={"options": ...}``), kept to those method ``name`` takes.
    A method that takes ``support`` (the mini guide's labelled set) gets the ``dataset`` it expands; one that takes
    ``data`` (ALIA, whose filter trains a classifier on it) gets ``source``: the data's name, split, root and
    loader options."""
    own = set(get_method(name).Config.field_names())
    out = {k: v for k, v in options.items() if k in own}
    if "support" in own and dataset is not None:
        out.setdefault("support", dataset)
    if "data" in own:
        out.update({k: v for k, v in (source or {}).items() if k in own and k not in out})
    return out


def method_spec(entry) -> tuple[str, str, dict]:
    """A ``methods`` entry of :func:`run_grid` as ``(label, method, options)``: a name, or ``(label, name)``, or
    ``(label, name, {option: value})`` with options of the method's config (e.g. ``{"opt_steps": 0}``)."""
    if isinstance(entry, str):
        return entry, entry, {}
    if isinstance(entry, (tuple, list)) and len(entry) in (2, 3):
        label, name = entry[0], entry[1]
        opts = dict(entry[2]) if len(entry) == 3 and entry[2] else {}
        if name != "original":
            own = set(get_method(name).Config.field_names())
            unknown = sorted(set(opts) - own)
            if unknown:
                raise ValueError(f"method {label!r}: {name} has no option(s) {unknown}; its options: {sorted(own)}")
        elif opts:
            raise ValueError(f"method {label!r}: 'original' takes no options")
        return str(label), str(name), opts
    raise ValueError(f"a method is a name or (label, name, {{option: value}}), got {entry!r}")


def train_config(dataset: str, profile: str, seed: int, out, expanded=None, **overrides):
    """The :class:`gifkit.train.config.TrainConfig` of a cell: the profile's preset, then ``overrides``.

    ``smoke``: the ``smoke`` preset (timm's tiny ``test_resnet``, 32 px, 2 epochs); ``paper``: the paper's
    protocol (ResNet-50 from scratch, 100 epochs, the paper's per-dataset lr); ``mini``: the mini experiment's
    classifier (the ``mini`` preset: ResNet-18 at 28 px, 300 steps, on the loader's 20 images per class).
    """
    from gifkit.train.config import make_config

    expanded = [str(expanded)] if expanded else []
    common = dict(seed=int(seed), out=str(out), expanded=expanded, progress=False)
    base = {"data": dataset, **({"workers": 0} if get_profile(profile).tiny else {})}  # tiny data: no loader workers
    if str(dataset).lower() in NO_HFLIP:
        base["hflip"] = False
    return make_config(profile=profile, **{**base, **common, **overrides})


def _fmt(v) -> str:
    """A setting as a short folder-name part: ``{"n_per_class": 20}`` -> ``n_per_class-20``."""
    if isinstance(v, dict):
        return ",".join(f"{k}-{_fmt(x)}" for k, x in sorted(v.items()))
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt(x) for x in v)
    return str(v)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.,=+" else "_" for c in str(name)) or "_"


ORIGINAL_STEPS = ("epochs", "equal")


def run_grid(data, methods, *, out, profile="smoke", ratio=5, seeds=(0,), limit=None, train: dict | None = None,
             expand: dict | None = None, original_steps: str = "epochs", progress=False, finished_only: bool = False):
    """For each dataset x method x seed: expand (method "original" = no expansion), then gifkit.train.loop.train with the
    profile's preset + `train` overrides on original + expanded data; resumes finished cells (``finished_only``: returns
    the rows of the finished cells and runs nothing, e.g. to report on a grid still running). One row per cell with
    columns dataset, method, seed, accuracy, accuracy_macro, n_train, expand_seconds, train_seconds, run_dir,
    expanded_dir. `methods` entries may be a name or (label, name, {option: value}) for ablation variants
    (:func:`method_spec`).

    - ``data``: a dataset name / folder, or a list of them. ``ratio``: an int, or ``{dataset: ratio}``.
    - ``train``: :class:`gifkit.train.config.TrainConfig` overrides for every cell (``arch``, ``epochs``, ...); the seeds
      expanded are the training split the cell trains on (``data_root``, ``data_kwargs``, ``train_split``).
    - ``expand``: for every cell, ``batch_size``, ``device``, ``output_size`` of :func:`gifkit.methods.expand`, and
      ``options``: method options shared by every method that takes them (:func:`shared_options`; a method's own
      options win). With profile ``paper`` a dataset of the paper gets its GIF-SD preset
      (:data:`gifkit.methods.gif_sd.PRESET_OF`) unless ``options`` names one.
    - Steps: unless ``train`` sets ``steps``/``steps_ratio`` (or the profile fixes the steps, as mini does),
      every expansion cell trains ``steps_ratio = ratio * n_expanded_seeds / n_original``, i.e. the steps the
      expanded set takes in the preset's epochs; the ``original`` cells train the preset's epochs over the
      original set (``original_steps="epochs"``: the official README's, fewer steps) or the expansions' steps
      (``"equal"``: gifkit's equal-steps protocol).
    - Columns: ``method`` is the label; ``base_method`` the method it runs. ``accuracy`` is the final-epoch
      headline figure in % (macro accuracy on the MedMNIST sets, micro elsewhere, as the paper reports),
      ``accuracy_micro``/``accuracy_macro`` both, ``best_accuracy`` the best over epochs (optimistic: the official
      scripts' figure). ``expand_seconds`` is the time of the run that wrote the expansion.
    """
    import pandas as pd

    from gifkit.data import load_dataset
    from gifkit.train.config import settings_of
    from gifkit.train.loop import train as train_run

    if original_steps not in ORIGINAL_STEPS:
        raise ValueError(f"original_steps must be one of {ORIGINAL_STEPS}, got {original_steps!r}")
    datasets = [data] if isinstance(data, (str, Path)) else list(data)
    specs = [method_spec(m) for m in methods]
    labels = [s[0] for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"method labels must be unique, got {labels}")
    train, expand = dict(train or {}), dict(expand or {})
    train.pop("out", None), train.pop("expanded", None)  # set per cell
    # one training run folder per set of training overrides: e.g. several archs train on one expansion
    run_name = "run" + "".join(f"_{k}={_safe(_fmt(v))}" for k, v in sorted(train.items())
                               if k not in ("progress", "workers", "device"))
    out = Path(out)
    rows = []
    cache = MethodCache()
    for ds in datasets:
        ds = str(ds)
        r = ratio.get(ds, 5) if isinstance(ratio, dict) else ratio
        loaded = None
        exp = dict(expand)
        base_options = dict(exp.pop("options", None) or {})
        unknown = sorted(set(exp) - {"batch_size", "device", "output_size"})
        if unknown:
            raise ValueError(f"expand: unknown key(s) {unknown}; known: batch_size, device, output_size, options")
        if profile == "paper" and "preset" not in base_options:
            base_options["preset"] = PRESET_OF.get(ds.lower())
        for label, name, opts in specs:
            for s in seeds:
                cfg = train_config(ds, profile, s, "", None, **train)
                if loaded is None:
                    loaded = load_dataset(cfg.data, cfg.train_split, root=cfg.data_root, profile=cfg.profile,
                                          **cfg.data_kwargs)
                dataset, class_names = loaded
                n_orig = len(dataset)
                n_seeds = n_orig if limit is None else min(int(limit), n_orig)
                folder = _safe(label)
                if cfg.steps is None and cfg.steps_ratio is None and (name != "original" or original_steps == "equal"):
                    cfg = dataclasses.replace(cfg, steps_ratio=r * n_seeds / n_orig)
                    if name == "original":  # its steps depend on the expansions it is compared with
                        folder += f"_as{cfg.steps_ratio:g}x"
                cell = out / _safe(Path(ds).name if Path(ds).is_dir() else ds) / folder / f"seed_{s}"
                expanded_dir = None if name == "original" else cell / "expanded"
                run_dir = cell / run_name
                cfg = dataclasses.replace(cfg, out=str(run_dir), expanded=[str(expanded_dir)] if expanded_dir else [])
                source = {"data": ds, "split": cfg.train_split, "data_root": cfg.data_root,
                          "data_kwargs": cfg.data_kwargs or None}
                options = {} if name == "original" else \
                    {**shared_options(name, base_options, dataset, source), **opts}
                key = {"profile": profile, "method": name, "ratio": r, "original_steps": original_steps,
                       "limit": limit, "options": {k: _key_value(v, False) for k, v in options.items() if k != "support"},
                       "expand": exp, "train": settings_of(cfg)}
                key = normalized(key)
                done = run_dir / "cell.json"
                saved = matching_record(done, key, key="key", what="a study cell", on_mismatch="ignore")
                if saved is not None:
                    rows.append(saved["row"])
                    continue
                if finished_only:
                    continue
                expand_seconds = 0.0
                if expanded_dir is not None:
                    t = time.perf_counter()
                    method = cache.get(name, class_names, profile=profile, device=exp.get("device"), options=options)
                    res = _expand_cell(method, dataset, expanded_dir, ratio=r, seed=s, limit=limit,
                                       progress=progress, exp=exp)
                    timing = cell / "expand_seconds.json"  # the expansion is shared by the cell's training runs
                    total = read_json(timing, {"seconds": 0.0})["seconds"]
                    if res.written or not timing.is_file():
                        total += time.perf_counter() - t
                        write_json(timing, {"seconds": total})
                    expand_seconds = total
                result = train_run(cfg)
                final, primary = result["final"], result["primary_metric"]
                best = (result["best_over_epochs"].get(primary) or {}).get("value")
                row = {"dataset": ds, "method": label, "seed": int(s), "accuracy": final[primary],
                       "accuracy_macro": final["accuracy_macro"], "n_train": result["dataset"]["n_train_total"],
                       "expand_seconds": expand_seconds,
                       "train_seconds": result["throughput"]["train_seconds"], "run_dir": str(run_dir),
                       "expanded_dir": str(expanded_dir) if expanded_dir else None, "base_method": name,
                       "accuracy_micro": final["accuracy_micro"], "best_accuracy": best, "arch": cfg.arch,
                       "ratio": 0 if name == "original" else r, "total_steps": result["total_steps"]}
                write_json(done, {"key": key, "row": row})
                rows.append(row)
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def _expand_cell(method, dataset, out, *, ratio, seed, limit, progress, exp):
    """One cell's expansion (:func:`gifkit.methods.expand` with the grid's run arguments)."""
    from gifkit.methods import expand

    return expand(method, dataset, out, ratio=ratio, seed=seed, limit=limit, progress=progress,
                  batch_size=exp.get("batch_size"), output_size=exp.get("output_size"))


def summarize(df, by=("dataset", "method"), value="accuracy"):
    """Mean, std (ddof=1, 0 for n=1) and n of `value` per group `by` (groups in order of appearance)."""
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)
    g = df.groupby(by, sort=False)[value]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()
    out.loc[out["n"] <= 1, "std"] = 0.0
    return out
