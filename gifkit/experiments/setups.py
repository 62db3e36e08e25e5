"""Each study notebook's per-profile defaults and the grid settings it runs with, so that a notebook's setup cell
is one call and its ``parameters`` cell the only place a reader changes anything.

* :data:`DEFAULTS` holds, per notebook and profile, the value each parameter left at ``None`` takes, and the
  profile's fixed choices (06 hands its row back as ``P``, which its later cells read). A real-checkpoint profile
  without a row of its own (``colab``, ...) takes ``paper``'s.
* :func:`setup` resolves a notebook's parameters against its row and builds the keyword arguments of
  :func:`gifkit.experiments.study.run_grid` (``settings``): on the mini profile
  :func:`gifkit.experiments.mini.grid_settings`, the cells ``gifkit mini`` computes in the same ``grid_dir``
  (so nothing is trained again), with ``batch_size`` as the one expansion override; elsewhere the profile with
  the training and expansion overrides the notebook's parameters name. It returns the values in the order
  :data:`RETURNS` lists, which the setup cell unpacks; :func:`parameters` names the parameters it reads, each of
  which the cell passes by its own name.
* :func:`arm_spec`: a ``run_grid`` method entry that takes the mini arm's label where the arm is one of
  :data:`gifkit.experiments.mini.ARMS` (so its cells are ``gifkit mini``'s).
"""
from __future__ import annotations

import copy
import inspect
from pathlib import Path

__all__ = ["TABLE1", "PAPER_RATIO", "ABLATIONS", "DEFAULTS", "RETURNS", "setup", "parameters", "arm_spec"]

TABLE1 = ["original", "cutout", "gridmask", "randaugment", "mixup", "cutmix", "mae", "gif-mae", "dalle",
          "gif-dalle", "sd", "gif-sd"]  # Table 1's methods, in its order
PAPER_RATIO = {"cifar100s": 5, "pets": 30, "caltech101": 20, "cars": 20, "flowers": 20, "dtd": 20,
               "pathmnist": 5, "breastmnist": 5, "organsmnist": 5}  # Table 1's expansion ratio per dataset
ABLATIONS = ["criteria", "noise", "eps", "diversity", "guidance", "guide", "prompts", "strength", "scale"]
_MINI_SEEDS, _PAPER_SEEDS = [0, 1, 2, 3, 4], [0, 1, 2]
_TEMPERATURES = [1.0, 0.1, 0.03, 0.01]  # S_div's softmax temperatures (1 is the paper's)

DEFAULTS: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": dict(dataset="smoke", method="gif-sd", ratio=2, n_seeds=4, seeds=[0]),
        "mini": dict(dataset="fashion-mnist", method="gif-vae", ratio=5, n_seeds=None, seeds=_MINI_SEEDS),
        "paper": dict(dataset="cifar100s", method="gif-sd", ratio=5, n_seeds=200, seeds=_PAPER_SEEDS)},
    "01_preliminary_studies": {
        "smoke": dict(dataset="smoke", ratio=2, augments=["randaugment", "cutout"], seeds=[0],
                      noise_method="gif-mae", n_seeds=4),
        "mini": dict(dataset="fashion-mnist", ratio=5, augments=["randaugment"], seeds=_MINI_SEEDS,
                     noise_method="gif-vae", n_seeds=None),
        "paper": dict(dataset="cifar100s", ratio=5, augments=["randaugment", "cutout"], seeds=_PAPER_SEEDS,
                      noise_method="gif-mae", n_seeds=None)},
    "05_main_results": {
        "smoke": dict(datasets=["smoke"], ratio=2, n_seeds=4, seeds=[0],
                      methods=["original", "randaugment", "cutout", "mixup", "mae", "gif-mae", "sd", "gif-sd"]),
        "mini": dict(datasets=["fashion-mnist"], ratio=5, n_seeds=None, seeds=_MINI_SEEDS,
                     methods=["original", "cutout", "gridmask", "randaugment", "cutmix", "vae", "vae-random",
                              "gif-vae"]),
        "paper": dict(datasets=list(PAPER_RATIO), ratio=PAPER_RATIO, n_seeds=None, seeds=_PAPER_SEEDS,
                      methods=TABLE1)},
    "06_ablations": {  # datasets, ratio, the guided method of each study, the sweeps
        "smoke": dict(main="smoke", eps_data="smoke", ratio=2, n_seeds=4, seeds=[0], eps=[2, 8], eps_ratios=[2],
                      strengths=[0.5], scales=[5], temperatures=[1.0, 0.03], guided="gif-sd",
                      families=[("sd", "gif-sd", True)], noise=["gif-sd", "gif-mae"], probe="gif-dalle",
                      studies=ABLATIONS),
        "mini": dict(main="fashion-mnist", eps_data="fashion-mnist", ratio=5, n_seeds=None, seeds=_MINI_SEEDS,
                     eps=[0.4, 0.8, 2.0], eps_ratios=[5], strengths=[], scales=[], temperatures=_TEMPERATURES,
                     guided="gif-vae", families=[("vae", "gif-vae", False)], noise=["gif-vae"], probe="gif-vae",
                     studies=["criteria", "noise", "eps", "diversity", "guidance", "guide"]),
        "paper": dict(main="cifar100s", eps_data="caltech101", ratio=5, n_seeds=None, seeds=_PAPER_SEEDS,
                      eps=[2, 4, 8], eps_ratios=[5, 10], strengths=[0.3, 0.5, 0.7, 0.9, 0.99], scales=[1, 5, 50, 100],
                      temperatures=_TEMPERATURES, guided="gif-sd",
                      families=[("sd", "gif-sd", True), ("dalle", "gif-dalle", False)], noise=["gif-sd", "gif-mae"],
                      probe="gif-sd", studies=ABLATIONS)},
    "07_ood": {  # methods: original, randaugment and the guided method; corruptions: which set
        "smoke": dict(dataset="smoke", guided="gif-sd", ratio=2, seeds=[0], n_seeds=4, corruptions="stand-ins"),
        "mini": dict(dataset="fashion-mnist", guided="gif-vae", ratio=5, seeds=_MINI_SEEDS, n_seeds=None,
                     corruptions="stand-ins", c_per_class=50),
        "paper": dict(dataset="cifar100s", guided="gif-sd", ratio=5, seeds=_PAPER_SEEDS, n_seeds=None,
                      corruptions="cifar100-c")},
    "08_long_tail": {
        "smoke": dict(dataset="smoke-lt", method="gif-mae", ratio=2, seeds=[0], epochs=None),
        "mini": dict(dataset="fashion-mnist-lt", method="gif-vae", ratio=5, seeds=_MINI_SEEDS, epochs=None),
        "paper": dict(dataset="cifar100lt", method="gif-sd", ratio=20, seeds=_PAPER_SEEDS, epochs=200)},
    "09_architectures": {  # archs: {the paper's column: the architecture that stands in for it}
        "smoke": dict(datasets=["smoke"], methods=["original", "randaugment", "gif-sd"], ratio=2, n_seeds=4,
                      seeds=[0], archs={"ResNet-50": "test_resnet", "ResNeXt-50": "test_byobnet",
                                        "WideResNet-50": "test_convnext", "MobileNetV2": "test_efficientnet"}),
        "mini": dict(datasets=["fashion-mnist"], methods=["original", "gif-vae"], ratio=5, n_seeds=None,
                     seeds=_MINI_SEEDS, archs={"ResNet-50": "mini_resnet18", "ResNeXt-50": "regnetx_002",
                                               "MobileNetV2": "mobilenetv2_050"}),
        "paper": dict(datasets=["cars", "caltech101", "flowers", "dtd", "cifar100s", "pets"],
                      methods=["original", "randaugment", "gif-dalle", "gif-sd"], ratio=5, n_seeds=None,
                      seeds=_PAPER_SEEDS, archs={"ResNet-50": "resnet50", "ResNeXt-50": "resnext50",
                                                 "WideResNet-50": "wideresnet50", "MobileNetV2": "mobilenetv2"})},
    "10_efficiency": {  # n_time_seeds: seeds expanded for the timing; n_seeds: for FID vs accuracy
        "smoke": dict(dataset="smoke", methods=["randaugment", "cutout", "gridmask", "gif-mae", "gif-dalle", "gif-sd"],
                      n_time_seeds=4, n_seeds=4, seeds=[0], ratio=2),
        "mini": dict(dataset="fashion-mnist", methods=["randaugment", "cutout", "gridmask", "vae", "gif-vae"],
                     n_time_seeds=20, n_seeds=None, seeds=_MINI_SEEDS, ratio=5),
        "paper": dict(dataset="cifar100s", methods=["randaugment", "cutout", "gridmask", "gif-mae", "gif-dalle",
                                                    "gif-sd"], n_time_seeds=100, n_seeds=None, seeds=_PAPER_SEEDS,
                      ratio=5)},
}

# what setup returns for each notebook, in order: the setup cell unpacks these names
RETURNS: dict[str, tuple[str, ...]] = {
    "00_quickstart": ("dataset", "method", "ratio", "n_seeds", "seeds", "settings"),
    "01_preliminary_studies": ("dataset", "ratio", "augments", "seeds", "noise_method", "n_seeds", "settings",
                               "train_opts"),
    "05_main_results": ("datasets", "methods", "ratio", "n_seeds", "seeds", "settings", "specs"),
    "06_ablations": ("P", "studies", "skipped", "n_seeds", "seeds", "eps_values", "eps_ratios", "temperatures",
                     "strengths", "guidance_scales", "cfg", "settings", "grid"),
    "07_ood": ("dataset", "guided", "methods", "ratio", "seeds", "n_seeds", "settings", "specs", "c_data", "c_root",
               "c_kwargs", "corruptions"),
    "08_long_tail": ("dataset", "method", "ratio", "seeds", "epochs", "settings"),
    "09_architectures": ("datasets", "methods", "archs", "ratio", "n_seeds", "seeds", "settings", "specs",
                         "preset_arch"),
    "10_efficiency": ("dataset", "methods", "ratio", "n_time_seeds", "n_seeds", "seeds", "settings", "specs",
                      "expand_kw"),
}


def arm_spec(label: str, method: str, **options):
    """The ``run_grid`` method entry of ``label``: the mini arm's (:func:`gifkit.experiments.mini.arm_specs`)
    where :data:`gifkit.experiments.mini.ARMS` has ``label`` with this method and options, else
    ``(label, method, options)``."""
    from gifkit.experiments.mini import ARMS, arm_specs

    arm = ARMS.get(label)
    return arm_specs([label])[0] if arm is not None and arm.options == options and arm.method == method \
        else (label, method, options)


def _specs(profile: str, methods) -> list:
    """``run_grid`` method entries: on mini each of :data:`gifkit.experiments.mini.ARMS` by its arm, so its
    label and options are ``gifkit mini``'s."""
    if profile != "mini":
        return list(methods)
    from gifkit.experiments.mini import ARMS, arm_specs

    return [arm_specs([m])[0] if m in ARMS else m for m in methods]


def _mini_settings(grid_dir, seeds, ratio, mini, batch_size):
    """The mini grid's settings (:func:`gifkit.experiments.mini.grid_settings`) and their MiniConfig."""
    from gifkit.experiments.mini import grid_settings
    from gifkit.experiments.nbkit import mini_config

    cfg = mini_config(grid_dir, seeds, ratio=ratio, **(mini or {}))
    settings = grid_settings(cfg)
    if batch_size:
        settings["expand"]["batch_size"] = batch_size
    return settings, cfg


def _given(value):
    """Overrides of a settings dict: the entries set (neither None, 0 nor empty)."""
    return {k: v for k, v in value.items() if v}


def _data_train(data_root, download) -> dict:
    return _given({"data_root": data_root, "data_kwargs": {"download": True} if download else None})


def setup(notebook: str, profile: str, grid_dir=None, *, out=None, **params) -> tuple:
    """Notebook ``notebook``'s parameters ``params`` resolved for ``profile``, and its grid settings: the values
    :data:`RETURNS` names, in that order. A parameter left at None (or, for lists, empty) takes the profile's
    value in :data:`DEFAULTS`; ``n_seeds`` stays ``0`` when given. ``grid_dir`` is needed on mini (it must end in
    ``work/grid``, :func:`gifkit.experiments.nbkit.mini_config`); ``out`` on 07's smoke profile, where the
    stand-in CIFAR100-C it tests on is written (:func:`gifkit.experiments.prelim.write_fake_cifar100c`)."""
    if notebook not in DEFAULTS:
        raise ValueError(f"no setup for notebook {notebook!r}; known: {', '.join(DEFAULTS)}")
    rows = DEFAULTS[notebook]
    p = copy.deepcopy(rows.get(profile, rows["paper"]))  # the notebook may change what it is handed
    values = _BUILDERS[notebook](profile, p, grid_dir, out, **params)
    return tuple(values[name] for name in RETURNS[notebook])


def parameters(notebook: str) -> list[str]:
    """The parameters of ``notebook``'s ``parameters`` cell that :func:`setup` takes (besides ``out``)."""
    return [n for n, a in inspect.signature(_BUILDERS[notebook]).parameters.items() if a.kind == a.KEYWORD_ONLY]


def _common(p, params, names):
    """``names`` resolved: each given value, else the profile's; ``n_seeds`` by ``is None``."""
    return {n: (params.get(n) if params.get(n) is not None else p[n]) if n == "n_seeds" else
            (params.get(n) or p[n]) for n in names}


def _quickstart(profile, p, grid_dir, out, *, dataset=None, method=None, ratio=None, n_seeds=None, seeds=None,
                epochs=None, batch_size=None, device=None, mini=None):
    v = _common(p, locals(), ("dataset", "method", "ratio", "n_seeds", "seeds"))
    v["seeds"] = list(v["seeds"])
    if profile == "mini":
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
    else:
        from gifkit.methods.gif_sd import PRESET_OF

        preset = PRESET_OF.get(v["dataset"]) if profile != "smoke" else None  # the paper's GIF-SD settings
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": {"epochs": epochs} if epochs else None,
                         "expand": {"device": device, "options": {"preset": preset},
                                    **({"batch_size": batch_size} if batch_size else {})}}
    return v


def _preliminary(profile, p, grid_dir, out, *, dataset=None, ratio=None, augments=None, seeds=None, n_seeds=None,
                 noise_method=None, data_root=None, batch_size=None, device=None, download=None, mini=None):
    v = _common(p, locals(), ("dataset", "ratio", "augments", "seeds", "noise_method", "n_seeds"))
    v["seeds"] = list(v["seeds"])
    if profile == "mini":  # the cells of `gifkit mini` (original, gif-vae, gif-vae-pixel) are shared
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
        v["train_opts"] = dict(v["settings"]["train"])
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": _data_train(data_root, download),
                         "expand": _given({"device": device, "batch_size": batch_size})}
        v["train_opts"] = {**v["settings"]["train"], "steps_ratio": v["ratio"]}  # the expanded set's epochs
    return v


def _main_results(profile, p, grid_dir, out, *, datasets=None, methods=None, ratio=None, n_seeds=None, seeds=None,
                  epochs=None, batch_size=None, device=None, mini=None):
    v = _common(p, locals(), ("datasets", "methods", "ratio", "n_seeds", "seeds"))
    v["seeds"] = list(v["seeds"])
    if profile == "mini":  # the cells of `gifkit mini` are shared: same folder, same settings, same arm labels
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": {"epochs": epochs} if epochs else None,
                         "expand": _given({"device": device, "batch_size": batch_size})}
    v["specs"] = _specs(profile, v["methods"])
    return v


def _ablations(profile, p, grid_dir, out, *, studies=None, n_seeds=None, seeds=None, eps_values=None,
               eps_ratios=None, temperatures=None, strengths=None, guidance_scales=None, epochs=None,
               batch_size=None, device=None, mini=None):
    requested = studies or p["studies"]
    v = {"P": p, "skipped": [s for s in requested if s not in p["studies"]],
         "studies": [s for s in requested if s in p["studies"]],
         "n_seeds": n_seeds if n_seeds is not None else p["n_seeds"], "seeds": list(seeds or p["seeds"]),
         "eps_values": eps_values or p["eps"], "eps_ratios": eps_ratios or p["eps_ratios"],
         "temperatures": temperatures or p["temperatures"], "strengths": strengths or p["strengths"],
         "guidance_scales": guidance_scales or p["scales"], "cfg": None}
    if profile == "mini":  # the cells of `gifkit mini` and of gifkit.experiments.guidance_study are shared
        v["settings"], v["cfg"] = _mini_settings(grid_dir, v["seeds"], p["ratio"], mini, batch_size)
    else:
        v["settings"] = {"profile": profile, "ratio": p["ratio"], "train": {"epochs": epochs} if epochs else None,
                         "expand": _given({"device": device, "batch_size": batch_size})}
    v["grid"] = dict(out=grid_dir, seeds=v["seeds"], limit=v["n_seeds"],
                     **{k: s for k, s in v["settings"].items() if k != "ratio"})
    return v


def _ood(profile, p, grid_dir, out, *, dataset=None, methods=None, ratio=None, seeds=None, n_seeds=None,
         corruptions=None, c_per_class=None, data_root=None, batch_size=None, device=None, download=None,
         mini=None):
    from gifkit.data.cifar import CORRUPTIONS as CIFAR100C
    from gifkit.data.corruptions import CORRUPTIONS as STAND_INS

    v = _common(p, locals(), ("dataset", "guided", "ratio", "seeds", "n_seeds"))
    v["seeds"] = list(v["seeds"])
    v["methods"] = methods or ["original", "randaugment", v["guided"]]
    v["corruptions"] = corruptions or list(STAND_INS if p["corruptions"] == "stand-ins" else CIFAR100C)
    if profile == "mini":
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
        v.update(c_data="fashion-mnist-c", c_root=None, c_kwargs={"test_per_class": c_per_class or p["c_per_class"]})
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": _data_train(data_root, download),
                         "expand": _given({"device": device, "batch_size": batch_size})}
        v.update(c_data="cifar100c", c_root=data_root, c_kwargs={})
        if profile == "smoke":  # a stand-in of CIFAR100-C in the official layout, from the smoke test set
            from gifkit.data import load_dataset
            from gifkit.experiments.prelim import write_fake_cifar100c

            if out is None:
                raise ValueError("07_ood on the smoke profile needs out= (its stand-in CIFAR100-C is written there)")
            v["c_root"] = Path(out) / "cifar100c_standin"
            write_fake_cifar100c(v["c_root"], load_dataset(v["dataset"], "test", profile=profile)[0],
                                 v["corruptions"])
    v["specs"] = _specs(profile, v["methods"])
    return v


def _long_tail(profile, p, grid_dir, out, *, dataset=None, method=None, ratio=None, seeds=None, epochs=None,
               data_root=None, batch_size=None, device=None, download=None, mini=None):
    v = _common(p, locals(), ("dataset", "method", "ratio", "seeds"))
    v["seeds"], v["epochs"] = list(v["seeds"]), epochs or p["epochs"]
    if profile == "mini":
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"],
                         "train": _given({"epochs": v["epochs"], **_data_train(data_root, download)}),
                         "expand": _given({"device": device, "batch_size": batch_size,
                                           "preset": None if profile == "smoke" else "cifar100s"})}
    return v


def _architectures(profile, p, grid_dir, out, *, datasets=None, methods=None, archs=None, ratio=None,
                   n_seeds=None, seeds=None, epochs=None, batch_size=None, device=None, mini=None):
    from gifkit.config import TRAIN_PRESETS

    v = _common(p, locals(), ("datasets", "methods", "archs", "ratio", "n_seeds", "seeds"))
    v["seeds"] = list(v["seeds"])
    if profile == "mini":
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": {"epochs": epochs} if epochs else {},
                         "expand": _given({"device": device, "batch_size": batch_size})}
    v["specs"] = _specs(profile, v["methods"])
    v["preset_arch"] = TRAIN_PRESETS["mini" if profile == "mini" else profile if profile in TRAIN_PRESETS
                                     else "paper"]["arch"]  # the architecture the training preset uses
    return v


def _efficiency(profile, p, grid_dir, out, *, dataset=None, methods=None, ratio=None, n_time_seeds=None,
                n_seeds=None, seeds=None, batch_size=None, device=None, mini=None):
    v = _common(p, locals(), ("dataset", "methods", "ratio", "n_time_seeds", "n_seeds", "seeds"))
    v["seeds"] = list(v["seeds"])
    if profile == "mini":
        v["settings"] = _mini_settings(grid_dir, v["seeds"], v["ratio"], mini, batch_size)[0]
        v["expand_kw"] = {k: e for k, e in v["settings"]["expand"].items() if e is not None}
    else:
        v["settings"] = {"profile": profile, "ratio": v["ratio"], "train": None,
                         "expand": _given({"device": device, "batch_size": batch_size})}
        if v["dataset"] == "cifar100s":  # GIF-SD's official CIFAR100-S settings
            v["settings"]["expand"]["options"] = {"preset": "cifar100s"}
        v["expand_kw"] = dict(v["settings"]["expand"])
    v["specs"] = ["original", *_specs(profile, v["methods"])]
    return v


_BUILDERS = {"00_quickstart": _quickstart, "01_preliminary_studies": _preliminary, "05_main_results": _main_results,
             "06_ablations": _ablations, "07_ood": _ood, "08_long_tail": _long_tail,
             "09_architectures": _architectures, "10_efficiency": _efficiency}
