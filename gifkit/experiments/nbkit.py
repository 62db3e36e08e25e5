"""What every numbered notebook shares: the run header, output folders (optionally on Google Drive), the Colab
install cell and badge, tables without NaN, and paired differences stated as effects or not.

* :data:`REPOSITORY` and :data:`RELEASE` are the one place the repository's URL and the release the notebooks
  install are written. :func:`install_cell` and :func:`badge` derive a notebook's install cell and Colab badge
  from them; ``python -m gifkit.experiments.notebooks --sync`` writes both into ``notebooks/`` and
  ``tests/test_notebooks.py`` fails when a notebook differs. The install keeps Colab's own torch and
  torchvision: they are passed to pip as ``torch==<installed version>``, so pip keeps them or stops.
* :func:`start_run` prints the profile, the date, the machine and the wall time of the run that made the
  outputs. The wall time is known only at the end: the last cell prints it (:meth:`RunInfo.finish`), and
  the headless runner (:mod:`gifkit.experiments.notebooks`) copies it into the header's line.
* :func:`folders` resolves ``out_dir`` (this notebook's figures and CSV) and ``grid_dir`` (the shared,
  resumable study folder) for a profile, relative ones under the repository root (:func:`project_root`, or
  ``$GIFKIT_ROOT``) however the kernel was started, or under ``/content/drive/MyDrive/gifkit/`` with
  ``drive=True`` (Colab), so that a disconnect loses nothing: every expansion and training resumes.
* :func:`check_parameters` checks a run's parameter values against the notebook's ``parameters`` cell, by
  name: each must have the type its annotation there says (``n_seeds: int | None = None``) or, without one,
  the type of its default; a wrong one ends in one line naming the parameter, before any cell runs.
* Each study notebook's per-profile defaults and grid settings are not here but in
  :mod:`gifkit.experiments.setups` (its setup cell is one call to :func:`gifkit.experiments.setups.setup`).
* :func:`differences` and :func:`verdicts`: arms against a control, paired by seed, with a 95 % interval
  (:func:`gifkit.experiments.stats.paired_differences`); a difference is called an effect only when its
  interval excludes 0.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import types
import typing
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gifkit import __version__

__all__ = ["REPOSITORY", "RELEASE", "COLAB_GPU", "WALL_PLACEHOLDER", "SMOKE_BANNER", "colab_url", "badge",
           "install_spec", "install_cell", "in_colab", "machine", "RunInfo", "fmt_seconds", "start_run", "DRIVE",
           "ROOT_VARIABLE", "PROFILE_VARIABLE", "profile_line", "project_root", "folders", "ensure_data",
           "parameter_types", "check_parameters", "plan_sizes", "show", "differences", "verdicts", "mini_config"]

REPOSITORY = "https://github.com/gifkit/gifkit"  # the public repository: badges and the install cell derive from it
RELEASE = f"v{__version__}"  # the tag the notebooks install and open on Colab (tag each release with it)
COLAB_GPU = {"accelerator": "GPU", "colab": {"gpuType": "T4"}}  # notebook metadata: ask Colab for a GPU runtime
WALL_PLACEHOLDER = "wall time: printed by the last cell when the run ends"
SMOKE_BANNER = ("> **The outputs stored in this notebook come from the `smoke` profile: tiny random models on "
                "synthetic shapes.** Their images are noise and their numbers say nothing about the method; they "
                "show that every step runs and what each cell prints. Real results need the `paper` profile "
                "(a GPU and the checkpoints named below).")
DRIVE = Path("/content/drive/MyDrive")
ROOT_VARIABLE = "GIFKIT_ROOT"  # where relative output folders go, when set (:func:`project_root`)
PROFILE_VARIABLE = "GIFKIT_PROFILE"  # the profile switch every parameters cell honours (:func:`profile_line`)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets


def colab_url(notebook: str) -> str:
    """``https://colab.research.google.com/github/<owner>/<repo>/blob/<RELEASE>/notebooks/<notebook>``."""
    slug = REPOSITORY.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{slug}/blob/{RELEASE}/notebooks/{notebook}"


def badge(notebook: str) -> str:
    """The "Open in Colab" badge (markdown) of ``notebook`` (a file name such as ``05_main_results.ipynb``)."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)})"


def install_spec(extras=("mini",)) -> str:
    """The pip requirement of gifkit at :data:`RELEASE` with ``extras``: ``gifkit[mini] @ git+<URL>@<tag>``."""
    return f"gifkit[{','.join(extras)}] @ git+{REPOSITORY}@{RELEASE}" if extras else f"gifkit @ git+{REPOSITORY}@{RELEASE}"


def install_cell(extras=("mini",)) -> str:
    """The source of a notebook's install cell (does nothing where gifkit is importable, e.g. a checkout)."""
    return (
        "# Colab: install gifkit at the pinned release with the extras this notebook needs, keeping Colab's own\n"
        "# torch and torchvision (pinned to the installed versions, so pip never replaces them). Does nothing where\n"
        "# gifkit is importable (a checkout). Written by `python -m gifkit.experiments.notebooks --sync`.\n"
        "import importlib.metadata, importlib.util, os, subprocess, sys\n"
        "if importlib.util.find_spec(\"gifkit\") is None:\n"
        "    keep = [f\"{p}=={importlib.metadata.version(p)}\" for p in (\"torch\", \"torchvision\")\n"
        "            if importlib.util.find_spec(p) is not None]\n"
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           os.environ.get(\"GIFKIT_SOURCE\", \"{install_spec(extras)}\"), *keep])")


def in_colab() -> bool:
    """True inside Google Colab."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # no "google" package at all
        return False


def machine() -> str:
    """One line: OS and CPU cores, torch threads, the GPU (if any), torch's version."""
    import torch

    gpu = (f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU")
    where = "Colab, " if in_colab() else ""
    return (f"{where}{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores "
            f"({torch.get_num_threads()} torch threads), {gpu}, torch {torch.__version__}, gifkit {__version__}")


@dataclass
class RunInfo:
    """When and where a notebook ran: :func:`start_run` prints it, :meth:`finish` prints the wall time."""

    profile: str
    date: str
    machine: str
    started: float = field(default_factory=time.perf_counter)

    seconds: float | None = None

    def finish(self) -> None:
        """Print the wall time since :func:`start_run` and keep it in :attr:`seconds`; returns nothing, so the
        notebook's last cell displays no value."""
        self.seconds = time.perf_counter() - self.started
        print(f"wall time of this run: {fmt_seconds(self.seconds)} (profile {self.profile}, {self.date}, "
              f"{self.machine})")


def fmt_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def start_run(profile: str) -> RunInfo:
    """Print the run header (profile, date, machine, wall time) and return the :class:`RunInfo`."""
    from gifkit.config import get_profile

    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")  # e.g. the unCLIP pipeline's deprecation notice
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no loading bars in stored outputs (transformers)
    if importlib.util.find_spec("diffusers") is not None:  # nor diffusers' "Loading pipeline components" bar
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    info = RunInfo(profile, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine())
    what = get_profile(profile).summary
    print(f"profile: {profile} ({what})\ndate: {info.date}\nmachine: {info.machine}\n{WALL_PLACEHOLDER}")
    if profile == "smoke":
        print("smoke profile: tiny random models on synthetic shapes; images are noise, numbers show the mechanics only")
    return info


def project_root() -> Path:
    """The folder relative ``out_dir`` and ``grid_dir`` resolve against, whatever folder the kernel started in
    (JupyterLab, VS Code and nbval start it in ``notebooks/``, papermill where it is told): the environment
    variable ``GIFKIT_ROOT`` when set, else the checkout gifkit is imported from (the folder holding
    ``pyproject.toml`` and ``notebooks/``), else the current folder (an installed gifkit, e.g. ``/content`` in
    Colab)."""
    if os.environ.get(ROOT_VARIABLE):
        return Path(os.environ[ROOT_VARIABLE]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


def folders(profile: str, out_dir: str, grid_dir: str | None = None, drive: bool = False):
    """``(out, grid)``: ``out_dir`` and ``grid_dir`` with ``{profile}`` filled in (``grid`` is None without a
    ``grid_dir``), relative ones under :func:`project_root`: the kernel moves there (``os.chdir``) and they stay
    relative, so ``results/...`` is the same folder from ``notebooks/`` as from the repository root, and the grid
    cells a notebook records name their folders as ``gifkit mini`` run from the root does (a cell's record holds its
    paths: written as ``/abs/results/...`` by one and ``results/...`` by the other, the cells would not be shared).
    ``out`` is created. ``drive=True``: relative folders go under ``/content/drive/MyDrive/gifkit/`` instead,
    mounting Google Drive first in Colab (elsewhere the Drive folder must exist)."""
    out = Path(out_dir.format(profile=profile))
    grid = Path(grid_dir.format(profile=profile)) if grid_dir else None
    if drive:
        root = mount_drive() / "gifkit"
        out = out if out.is_absolute() else root / out
        grid = grid if grid is None or grid.is_absolute() else root / grid
    elif Path.cwd().resolve() != project_root():
        os.chdir(project_root())
    out.mkdir(parents=True, exist_ok=True)
    return out, grid


def mount_drive() -> Path:
    """``/content/drive/MyDrive``, mounting Google Drive in Colab when it is not mounted yet."""
    from gifkit.errors import UserError

    if not DRIVE.is_dir():
        if not in_colab():
            raise UserError(f"drive=True writes to Google Drive ({DRIVE}), which exists only in Colab; "
                            "run with drive=False, or give out_dir/grid_dir folders of your own")
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount(str(DRIVE.parent))
    return DRIVE


def ensure_data(profile: str, download: bool | None = None) -> None:
    """The mini profile's Fashion-MNIST files, fetched by torchvision into gifkit's cache when missing and
    ``download`` (``None``: only in Colab). Other profiles: nothing (their loaders take ``download=``)."""
    if profile != "mini":
        return
    from gifkit.data.fashion import DataUnavailable, load_arrays

    download = in_colab() if download is None else bool(download)
    for split in ("train", "test"):
        try:
            load_arrays("fashion-mnist", split, download=download)
        except DataUnavailable as e:
            raise DataUnavailable(f"{e}\n(or run this notebook with download=True)") from None


_TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "tuple": tuple,
               "None": None}


def profile_line(profile: str, comment: str = "") -> str:
    """The ``profile`` line of a parameters cell: ``profile`` is the environment variable
    :data:`PROFILE_VARIABLE` when set (a teacher's switch: ``GIFKIT_PROFILE=smoke pytest --nbval-lax notebooks/``
    runs every notebook on the smoke profile without editing one), else ``profile``; a value papermill injects
    wins over both. The cell imports ``os`` on the line above (it runs before the install cell)."""
    head = f'profile = os.environ.get("{PROFILE_VARIABLE}", {json.dumps(profile)})'
    return f"{head}  # {comment}" if comment else head


def _default(node: ast.expr) -> Any:
    """A parameter's default: a literal, or the default of ``os.environ.get("NAME", literal)``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.get" and len(node.args) == 2:
        return ast.literal_eval(node.args[1])
    return ast.literal_eval(node)


def parameter_types(source: str) -> dict[str, tuple[Any, Any]]:
    """``{name: (expected type, default)}`` of a ``parameters`` cell's top-level assignments ``name = literal``
    and ``name: annotation = literal`` (or ``os.environ.get("NAME", literal)``, :func:`profile_line`). The
    annotation gives the type (builtins, ``list[int]``, ``X | None``);
    without one the default's, or ``None`` (which many parameters take to mean "the profile's"; a list of one
    kind of item: ``list[that kind]``); a default of ``None`` without an annotation accepts any value (type
    ``None`` here)."""
    found: dict[str, tuple[Any, Any]] = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if not isinstance(target, ast.Name) or node.value is None:
            continue
        default = _default(node.value)
        if isinstance(node, ast.AnnAssign):
            expected = eval(compile(ast.Expression(node.annotation), "<annotation>", "eval"),  # noqa: S307
                            {"__builtins__": {}}, _TYPE_NAMES)
        elif default is None:
            expected = None
        elif isinstance(default, list) and default and len({type(v) for v in default}) == 1:
            expected = list[type(default[0])] | None
        else:
            expected = type(default) | None
        found[target.id] = (expected, default)
    return found


def _matches(value: Any, expected: Any) -> bool:
    if expected is None:
        return True
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, a if a is not type(None) else type(None)) for a in args)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else \
            isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}" if args else "a list"
    if expected is type(None):
        return "None"
    name = getattr(expected, "__name__", str(expected))
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_parameters(values: dict, source: str, notebook: str = "the notebook") -> None:
    """Check ``values`` (what a run gives the notebook, e.g. papermill's parameters) against its
    ``parameters`` cell ``source`` (:func:`parameter_types`): a name the cell does not define, or a value of
    another type, raises ``ValueError`` in one line naming the parameter, the type expected and the default."""
    known = parameter_types(source)
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"{notebook} has no parameter {name!r}; its parameters are {', '.join(known)}")
        expected, default = known[name]
        if not _matches(value, expected):
            raise ValueError(f"{notebook}: parameter {name} must be {_describe(expected)} (its default is "
                             f"{default!r}), got {value!r} ({type(value).__name__})")


def plan_sizes(profile: str, datasets, settings: dict) -> dict | None:
    """Training-set sizes for :func:`gifkit.experiments.costs.grid_plan` on the mini profile, loaded with the grid's
    data arguments (so ``mini={"n_per_class": 4}`` is counted as 40 images); ``None`` elsewhere (the plan then
    uses :data:`gifkit.experiments.costs.TRAIN_SIZES`, and needs no data on disk)."""
    if profile != "mini":
        return None
    from gifkit.data import load_dataset

    kwargs = (settings.get("train") or {}).get("data_kwargs") or {}
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    return {d: len(load_dataset(d, "train", profile=profile, **kwargs)[0]) for d in datasets}


def show(df, digits: int = 2):
    """``df`` for display: floats rounded to ``digits``, missing values as "—" (never NaN)."""
    import pandas as pd

    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(digits)
        elif out[c].dtype == object:
            out[c] = [round(v, digits) if isinstance(v, float) else v for v in out[c]]
    return out.astype(object).where(out.notna(), "—")


def differences(runs, control: str, *, arm: str = "method", by=(), value: str = "accuracy", digits: int = 2):
    """Each arm minus ``control``, paired by seed, as a display table: ``[*by, arm, "vs", "seeds",
    "difference [95 % CI]", "effect?"]`` (:func:`gifkit.experiments.stats.paired_differences`)."""
    import pandas as pd

    from gifkit.experiments.stats import format_difference, paired_differences

    p = paired_differences(runs, control, arm=arm, by=by, value=value)
    words = {"higher": "yes: higher", "lower": "yes: lower", "no effect": "no (interval holds 0)",
             "n/a": "n/a (too few seeds or no spread)"}
    return pd.DataFrame({**{b: p[b] for b in by}, arm: p[arm], "vs": p["control"], "seeds": p["n"],
                         "difference [95 % CI]": [format_difference(m, lo, hi, digits) for m, lo, hi in
                                                  zip(p["mean_diff"], p["ci_low"], p["ci_high"])],
                         "effect?": p["verdict"].map(words)})


def verdicts(table, unit: str = "points") -> str:
    """One sentence per row of a :func:`differences` table, calling a difference an effect only when its 95 %
    interval excludes 0."""
    arm = table.columns[list(table.columns).index("vs") - 1]
    lines = []
    for _, r in table.iterrows():
        name = " / ".join(str(r[c]) for c in table.columns[:list(table.columns).index(arm) + 1])
        d, e = r["difference [95 % CI]"], r["effect?"]
        if e.startswith("yes"):
            lines.append(f"{name} vs {r['vs']}: {d} {unit}; the interval excludes 0, so this is an effect "
                         f"({e.split(': ')[1]}).")
        elif e.startswith("no"):
            lines.append(f"{name} vs {r['vs']}: {d} {unit}; the interval holds 0: no detectable difference "
                         f"with {r['seeds']} seeds.")
        else:
            lines.append(f"{name} vs {r['vs']}: {d} {unit} from {r['seeds']} seed(s); fewer than 3 seeds or no "
                         f"spread between them, so no claim either way.")
    return "\n".join(lines)


def mini_config(grid_dir: str | Path, seeds, **overrides):
    """The :class:`gifkit.experiments.mini.MiniConfig` whose grid folder is ``grid_dir`` (which must end in
    ``work/grid``, the layout ``gifkit mini`` writes: ``<out>/work/grid``), with ``seeds`` and ``overrides``;
    pass it to :func:`gifkit.experiments.mini.grid_settings` and the studies, so their cells are shared."""
    from gifkit.experiments.mini import MiniConfig

    grid = Path(grid_dir)
    if grid.parts[-2:] != ("work", "grid"):
        raise ValueError(f"on the mini profile grid_dir must end in work/grid (as gifkit mini writes it), got {grid}")
    return MiniConfig(seeds=tuple(seeds), out=str(grid.parent.parent), progress=False, **overrides)

