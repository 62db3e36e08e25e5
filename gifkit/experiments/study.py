"""Studies: expand with any method, train on the result, tabulate (the engine of the result notebooks).

- :func:`expand_method` dispatches a method name to :func:`gifkit.core.imagine.expand` (the generative priors of
  :mod:`gifkit.methods`, models from :func:`gifkit.methods.build_models`), to
  :func:`gifkit.methods.augment.expand_augment` (the augmentation baselines) or to :func:`gifkit.experiments.alia.run_alia`;
  it is the one dispatch shared by ``gifkit expand`` and the notebooks.
- :func:`run_grid` runs every dataset x method x seed cell: expand the training split (method ``"original"``:
  no expansion), then :func:`gifkit.train.loop.train` on original + expanded data, and returns one row per cell.
  Every expansion of a dataset trains the same number of update steps (the paper's protocol: the same epochs
  over sets expanded by the same ratio); the original set trains the preset's epochs over itself, as the
  official README does (``original_steps="epochs"``), or as many steps as the expansions take
  (``original_steps="equal"``, gifkit's equal-steps protocol, not the paper's). Finished cells are resumed.
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

from gifkit.config import DEFAULT_RATIO, GIF_SD_PRESETS, NO_HFLIP, PRESET_OF, check_expand_args, get_profile
from gifkit.core.imagine import GuidanceConfig
from gifkit.io.files import read_json, write_json
from gifkit.io.runs import matching_record, normalized
from gifkit.methods import build_models, get_method

__all__ = ["ModelCache", "expand_method", "run_grid", "summarize", "method_spec", "train_config", "ROW_COLUMNS",
           "ORIGINAL_STEPS"]

ROW_COLUMNS = ["dataset", "method", "seed", "accuracy", "accuracy_macro", "n_train", "expand_seconds",
               "train_seconds", "run_dir", "expanded_dir", "base_method", "accuracy_micro", "best_accuracy",
               "arch", "ratio", "total_steps"]
_ALIA_KEYS = ("descriptions", "descriptions_file", "editor", "filter", "filter_classifier", "threshold_by",
              "semantic_clip", "template", "model_id",
              "captioner_id", "llm_id", "steps", "strength", "guidance_scale", "image_guidance_scale")


class ModelCache:
    """The models of the last prior method built (one entry), so the seeds and ablations of one method share them.

    :func:`build_models` runs again only when something that defines the models changed. The guidance settings
    do not define them: they are applied to the method's default :class:`GuidanceConfig` (with the preset's eps)
    exactly as build_models applies them, so ablation variants of one method share its models. Unguided
    methods (config ``None``) stay unguided. :func:`run_grid` keeps one cache for its whole grid.
    """

    def __init__(self):
        self._key = None
        self._models = None
        self._keep = None  # the objects whose ids are in the key

    def get(self, method, profile, class_names, preset, device, guidance, model_kwargs, dataset):
        kw = dict(model_kwargs or {})
        kw.setdefault("support", dataset)  # the mini guide's class prototypes come from the labelled set
        key = json.dumps([method, profile, list(class_names), preset, str(device),
                          {k: (f"<object {id(v)}>" if not isinstance(v, (str, int, float, bool, type(None), list, tuple))
                               else v) for k, v in sorted(kw.items())}], sort_keys=True, default=str)
        if self._key != key:
            self._models = None
            self._models = build_models(method, profile, list(class_names), preset=preset, device=device, **kw)
            self._key, self._keep = key, kw
        prior, classifier, g, params = self._models
        fields = {k: v for k, v in (guidance or {}).items() if v is not None}
        if g is not None and fields:
            g = GuidanceConfig(**{**dataclasses.asdict(g), **fields})
        return prior, classifier, g, params


def expand_method(data, method: str, out, *, profile="smoke", ratio=5, seed=0, limit=None, preset=None,
                  guidance: dict | None = None, model_kwargs: dict | None = None, dataset=None, class_names=None,
                  device=None, batch_size=None, progress=False, split="train", data_root=None,
                  data_kwargs: dict | None = None, output_size=None, shard=(0, 1), barrier=None,
                  cache: ModelCache | None = None):
    """Expand `data` (a registered dataset name or folder; or the given `dataset`/`class_names`) with `method`
    (any registered prior method or an augmentation baseline) into `out`; resumes. GuidanceConfig overrides in
    `guidance`, prior overrides (steps, strength, ...) in `model_kwargs`.

    - prior methods (``gif-sd``, ``sd``, ``gif-mae``, ``mae``, ``gif-dalle``, ``dalle``, ``gif-vae``, ``vae``,
      ``dreamda``, ...): models from :func:`gifkit.methods.build_models` (``preset`` fills the paper's
      per-dataset settings, ``model_kwargs`` and ``guidance`` win over it), then :func:`gifkit.core.imagine.expand`;
      with a :class:`ModelCache` (``cache``) the models are reused by the next call when they would be built the
      same;
    - augmentation baselines: :func:`gifkit.methods.augment.expand_augment`, ``model_kwargs`` = the method's
      parameters (e.g. ``{"magnitude": 9}``); ``guidance`` must be empty;
    - ``alia``: :func:`gifkit.experiments.alia.run_alia`, ``model_kwargs`` = its options (descriptions, editor,
      filter, ...).

    ``ratio=None``: the preset's ratio, else 5. ``batch_size=None``: 4 seeds per batch for priors, 16 for
    augmentations; ``"auto"``: sized from the free GPU memory for priors, the default for the others. ``split``, ``data_root``, ``data_kwargs`` say how ``data`` is loaded (unless ``dataset`` is
    given); ``output_size``, ``shard`` and ``barrier`` are passed on (see :func:`gifkit.core.imagine.expand`).
    Returns the :class:`gifkit.core.imagine.ExpandResult` (``ALIAResult`` for alia).
    """
    from gifkit.core.imagine import expand
    from gifkit.methods.augment import expand_augment

    kind = get_method(method).kind
    if ratio is None:
        ratio = GIF_SD_PRESETS.get(preset or "", {}).get("ratio", DEFAULT_RATIO)
    if batch_size == "auto" and kind != "prior":
        batch_size = None  # memory-sized batches are for the priors; the others take their default
    check_expand_args(ratio=ratio, batch_size=None if batch_size == "auto" else batch_size, limit=limit,
                      output_size=output_size)  # before any work
    if kind == "pipeline":
        from gifkit.experiments.alia import run_alia

        unknown = sorted(set(model_kwargs or {}) - set(_ALIA_KEYS))
        if unknown or guidance:
            raise ValueError(f"alia: unknown option(s) {unknown or sorted(guidance)}; model_kwargs may hold "
                             f"{', '.join(_ALIA_KEYS)}")
        return run_alia(str(data), out, profile=profile, split=split, data_root=data_root, data_kwargs=data_kwargs,
                        ratio=int(ratio), seed=seed, batch_size=4 if batch_size is None else batch_size, limit=limit,
                        output_size=output_size, device=device, shard=shard, barrier=barrier, progress=progress,
                        dataset=dataset, class_names=class_names,
                        **{k: v for k, v in (model_kwargs or {}).items() if v is not None})
    if dataset is None:
        from gifkit.data import load_dataset

        dataset, loaded = load_dataset(data, split, root=data_root, profile=profile, **(data_kwargs or {}))
        class_names = class_names if class_names is not None else loaded
    if class_names is None:
        class_names = getattr(dataset, "classes", None)
        if class_names is None:
            raise ValueError("give class_names with dataset")
    if kind == "augment":
        if any(v is not None for v in (guidance or {}).values()):
            raise ValueError(f"{method} is an augmentation baseline: it takes no guidance settings")
        return expand_augment(dataset, class_names, out, method=method, ratio=int(ratio), seed=seed,
                              batch_size=16 if batch_size is None else batch_size, limit=limit,
                              output_size=output_size,
                              params={k: v for k, v in (model_kwargs or {}).items() if v is not None} or None,
                              shard=shard, barrier=barrier, progress=progress)
    prior, classifier, g, params = (cache or ModelCache()).get(method, profile, class_names, preset, device,
                                                               guidance, model_kwargs, dataset)
    return expand(dataset, class_names, prior, classifier, out, ratio=int(ratio), method=method, guidance=g,
                  seed=seed, batch_size=4 if batch_size is None else batch_size, limit=limit, output_size=output_size,
                  params=params, shard=shard, barrier=barrier, progress=progress)


def method_spec(entry) -> tuple[str, str, dict]:
    """A ``methods`` entry of :func:`run_grid` as ``(label, method, {"guidance": ..., "model_kwargs": ...})``."""
    if isinstance(entry, str):
        return entry, entry, {}
    if isinstance(entry, (tuple, list)) and len(entry) in (2, 3):
        label, name = entry[0], entry[1]
        opts = dict(entry[2]) if len(entry) == 3 and entry[2] else {}
        unknown = sorted(set(opts) - {"guidance", "model_kwargs"})
        if unknown:
            raise ValueError(f"method {label!r}: unknown option(s) {unknown}; use 'guidance' and 'model_kwargs'")
        return str(label), str(name), opts
    raise ValueError(f"a method is a name or (label, name, {{'guidance': ..., 'model_kwargs': ...}}), got {entry!r}")


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
             expand: dict | None = None, original_steps: str = "epochs", progress=False):
    """For each dataset x method x seed: expand (method "original" = no expansion), then gifkit.train.loop.train with the
    profile's preset + `train` overrides on original + expanded data; resumes finished cells. One row per cell with
    columns dataset, method, seed, accuracy, accuracy_macro, n_train, expand_seconds, train_seconds, run_dir,
    expanded_dir. `methods` entries may be a name or (label, name, {"guidance": {...}, "model_kwargs": {...}}) for
    ablation variants.

    - ``data``: a dataset name / folder, or a list of them. ``ratio``: an int, or ``{dataset: ratio}``.
    - ``train``: :class:`gifkit.train.config.TrainConfig` overrides for every cell (``arch``, ``epochs``, ...); the seeds
      expanded are the training split the cell trains on (``data_root``, ``data_kwargs``, ``train_split``).
    - ``expand``: extra :func:`expand_method` arguments for every cell (``preset``, ``batch_size``, ``device``,
      ``guidance``, ``model_kwargs``: these two apply to the generative methods only, and a method's own
      options win over them). With profile ``paper`` a dataset of the
      paper gets its GIF-SD preset (:data:`gifkit.config.PRESET_OF`) unless ``expand`` names one.
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
    cache = ModelCache()
    for ds in datasets:
        ds = str(ds)
        r = ratio.get(ds, 5) if isinstance(ratio, dict) else ratio
        loaded = None
        exp = dict(expand)
        if profile == "paper" and "preset" not in exp:
            exp["preset"] = PRESET_OF.get(ds.lower())
        base_guidance, base_kwargs = exp.pop("guidance", None) or {}, exp.pop("model_kwargs", None) or {}
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
                prior = name == "original" or get_method(name).kind != "augment"  # guidance/model_kwargs: priors'
                guidance = {**(base_guidance if prior else {}), **(opts.get("guidance") or {})}
                model_kwargs = {**(base_kwargs if prior else {}), **(opts.get("model_kwargs") or {})}
                key = {"profile": profile, "method": name, "ratio": r, "original_steps": original_steps, "limit": limit, "guidance": guidance,
                       "model_kwargs": model_kwargs, "expand": exp, "train": settings_of(cfg)}
                key = normalized(key)
                done = run_dir / "cell.json"
                saved = matching_record(done, key, key="key", what="a study cell", on_mismatch="ignore")
                if saved is not None:
                    rows.append(saved["row"])
                    continue
                expand_seconds = 0.0
                if expanded_dir is not None:
                    t = time.perf_counter()
                    res = expand_method(ds, name, expanded_dir, profile=profile, ratio=r, seed=s, limit=limit,
                                        guidance=guidance or None, model_kwargs=model_kwargs or None,
                                        dataset=dataset, class_names=class_names, progress=progress, cache=cache,
                                        **exp)
                    timing = cell / "expand_seconds.json"  # the expansion is shared by the cell's training runs
                    total = read_json(timing, {"seconds": 0.0})["seconds"]
                    if getattr(res, "written", 0) or not timing.is_file():
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


def summarize(df, by=("dataset", "method"), value="accuracy"):
    """Mean, std (ddof=1, 0 for n=1) and n of `value` per group `by` (groups in order of appearance)."""
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)
    g = df.groupby(by, sort=False)[value]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()
    out.loc[out["n"] <= 1, "std"] = 0.0
    return out
