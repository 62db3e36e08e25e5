"""Execute the numbered notebooks headlessly with papermill.

    python -m gifkit.experiments.notebooks --profile smoke                    # every notebook -> results/smoke/notebooks/
    python -m gifkit.experiments.notebooks --profile mini --only 05 06        # some, by number or name part
    python -m gifkit.experiments.notebooks --profile mini --only 05 --param ratio=5 --param "seeds=[0, 1]"
    python -m gifkit.experiments.notebooks --profile mini --only 05 --in-place   # refresh notebooks/05_*.ipynb

    python -m gifkit.experiments.notebooks --refresh --only 05               # in place, on its committed profile
    python -m gifkit.experiments.notebooks --sync                             # badges, install cells, Colab metadata

(``make notebooks NB="05 06" PROFILE=mini PARAMS="ratio=5 seeds=[0,1]"`` is the same.) Each notebook's
``parameters`` cell gets ``profile``, ``out_dir`` (``results/<profile>/<name>``), ``grid_dir`` (the shared,
resumable study folder ``results/<profile>/work/grid``, where the notebook has one) and the ``--param`` values
(Python literals, else text); executed copies go to ``results/<profile>/notebooks/``. ``--in-place`` writes the
executed notebook back into ``notebooks/`` (the committed outputs) and runs it in a fresh output folder (a
previous one is moved to ``<name>.previous``), so nothing stale is resumed into what is committed; only the
shared grid is resumed. A failure names the notebook and the cell, and the remaining notebooks still run. A
notebook whose metadata lists the profiles it supports (``metadata.gifkit.profiles``) is skipped, with a line
saying so, under any other profile.

After an in-place run the runner writes the run's wall time into the header line the notebook printed
(:data:`gifkit.experiments.nbkit.WALL_PLACEHOLDER`), keeps ``profile`` in the parameters cell, and records the
other parameters it was given in the header and in ``metadata.gifkit.last_run`` (the parameters cell keeps
its defaults, so the next refresh runs full size). ``--sync`` writes every notebook's Colab badge and install
cell from :data:`gifkit.experiments.nbkit.REPOSITORY` / ``RELEASE`` and the extras in
``metadata.gifkit.extras``, and the Colab GPU runtime metadata (``accelerator``, ``colab.gpuType``).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from gifkit.config import PROFILE_NAMES
from gifkit.experiments.nbkit import check_parameters

__all__ = ["ROOT", "notebooks", "committed_profile", "supported_profiles", "parse_params", "run", "refresh", "sync",
           "main"]

ROOT = Path(__file__).resolve().parent.parent.parent


def notebooks(folder: Path = ROOT / "notebooks", only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` in order; ``only``: numbers (``"05"``, ``"5"``) or name parts."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    keys = [o.zfill(2) if o.isdigit() else o for o in only]
    picked = [p for p in found if any(p.stem[:2] == k or (not k.isdigit() and k in p.stem) for k in keys)]
    if not picked:
        raise ValueError(f"no notebook matches {only}; there are {[p.stem for p in found]}")
    return picked


def committed_profile(path: Path) -> str:
    """The profile a notebook's committed outputs come from (``metadata.gifkit.committed_profile``, default smoke)."""
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return meta.get("gifkit", {}).get("committed_profile", "smoke")


def supported_profiles(path: Path) -> list[str]:
    """The profiles a notebook declares in ``metadata.gifkit.profiles`` (every profile when it declares none)."""
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return list(meta.get("gifkit", {}).get("profiles", PROFILE_NAMES))


def parse_params(items: list[str] | None) -> dict:
    """``["ratio=5", "seeds=[0, 1]", "dataset=smoke"]`` -> ``{"ratio": 5, "seeds": [0, 1], "dataset": "smoke"}``:
    each value as a Python literal, else as text."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"a notebook parameter is NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        try:
            out[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = value.strip()
    return out


def run(profile: str = "smoke", out: Path | None = None, only: list[str] | None = None, in_place: bool = False,
        params: dict | None = None, kernel: str = "python3", folder: Path = ROOT / "notebooks",
        results: Path | None = None) -> list[tuple[str, str]]:
    """Execute the notebooks; returns ``[(name, error)]`` for the ones that failed (skipped ones are not).
    ``results``: the folder holding ``<profile>/<name>`` and ``<profile>/work/grid`` (default ``results/``)."""
    import papermill as pm

    base = Path(results) if results is not None else Path("results")
    out = Path(out) if out is not None else ROOT / base / profile / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for nb in notebooks(folder, only=only):
        if profile not in supported_profiles(nb):
            print(f"skip  {nb.name}: written for the {' and '.join(supported_profiles(nb))} profile(s), "
                  f"not {profile}")
            continue
        target = nb if in_place else out / nb.name
        out_dir = base / profile / nb.stem
        if in_place:
            _set_aside(out_dir if out_dir.is_absolute() else ROOT / out_dir)
        values = {"profile": profile, "out_dir": str(out_dir)}
        if "grid_dir" in _parameters(nb):
            values["grid_dir"] = str(base / profile / "work" / "grid")
        values.update(params or {})
        t = time.perf_counter()
        try:
            check_parameters(values, _parameters(nb), nb.name)  # a wrong type is named before any cell runs
            pm.execute_notebook(str(nb), str(target), parameters=values, kernel_name=kernel, cwd=str(ROOT),
                                progress_bar=False)
            seconds = time.perf_counter() - t
            if in_place:
                finish_in_place(target, profile, seconds, params or {})
            print(f"ok    {nb.name}  {seconds:.0f} s -> {target}")
        except pm.PapermillExecutionError as e:
            failures.append((nb.name, f"cell {e.exec_count}: {e.ename}: {e.evalue}"))
            print(f"FAIL  {nb.name}: cell {e.exec_count}: {e.ename}: {e.evalue} (see {target})", file=sys.stderr)
        except Exception as e:  # kernel died, bad JSON, ...
            failures.append((nb.name, f"{type(e).__name__}: {e}"))
            print(f"FAIL  {nb.name}: {type(e).__name__}: {e}", file=sys.stderr)
    return failures


def _set_aside(folder: Path) -> None:
    """Move an existing output folder to ``<folder>.previous`` (replacing an older one), so the run starts fresh."""
    if folder.exists():
        previous = folder.with_name(folder.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        folder.rename(previous)


def _parameters(path: Path) -> str:
    """The source of a notebook's ``parameters`` cell."""
    nb = json.loads(Path(path).read_text())
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    return "".join(cell["source"]) if cell else ""


def refresh(only: list[str] | None = None, folder: Path = ROOT / "notebooks") -> list[tuple[str, str]]:
    """Re-execute notebooks in place, each on the profile its committed outputs come from
    (:func:`committed_profile`), in a fresh output folder."""
    failures = []
    for nb in notebooks(folder, only=only):
        failures += run(committed_profile(nb), only=[nb.stem], in_place=True, folder=folder)
    return failures


def finish_in_place(path: Path, profile: str, seconds: float, given: dict) -> None:
    """Tidy a notebook executed in place: drop papermill's ``injected-parameters`` cell, set ``profile`` in the
    ``parameters`` cell (the other values keep their defaults, so the next refresh runs full size), write the wall
    time and the parameters ``given`` into the header line the notebook printed (the one the last cell printed,
    so the notebook shows one wall time; ``seconds`` where it printed none), number the executed cells 1, 2, ...
    and record the run in ``metadata.gifkit.last_run``."""
    from gifkit.experiments.nbkit import WALL_PLACEHOLDER, fmt_seconds, profile_line

    nb = json.loads(Path(path).read_text())
    cells = nb["cells"]
    cells[:] = [c for c in cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    lines = "".join(params["source"]).splitlines()
    for i, line in enumerate(lines):
        if line.split("=", 1)[0].strip() == "profile" and "=" in line:
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            lines[i] = profile_line(profile, comment)
    params["source"] = [ln + "\n" for ln in lines[:-1]] + lines[-1:]
    finished = re.search(r"wall time of this run: (\S+ \S+)", "".join(_texts(cells[-1])))
    wall = f"wall time: {finished.group(1)} (printed by the last cell)" if finished else \
        f"wall time: {fmt_seconds(seconds)} (the whole notebook, measured by gifkit.experiments.notebooks)"
    if given:
        wall += "\nparameters given to this run: " + ", ".join(f"{k}={v!r}" for k, v in given.items())
    done = False
    for cell in cells:
        for o in cell.get("outputs", []):
            text = "".join(o.get("text", [])) if o.get("output_type") == "stream" else ""
            if not done and WALL_PLACEHOLDER in text:
                new = text.replace(WALL_PLACEHOLDER, wall, 1)
                o["text"] = new.splitlines(keepends=True)
                done = True
    count = 0
    for cell in cells:  # numbered 1, 2, ... without the gap papermill's removed parameters cell leaves
        if cell["cell_type"] == "code" and cell.get("execution_count") is not None:
            count += 1
            cell["execution_count"] = count
            for o in cell.get("outputs", []):
                if o.get("output_type") == "execute_result":
                    o["execution_count"] = count
    meta = nb.setdefault("metadata", {}).setdefault("gifkit", {})
    meta["last_run"] = {"profile": profile, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                        "wall_seconds": round(seconds, 1), "parameters": {k: repr(v) for k, v in given.items()}}
    nb["metadata"].pop("papermill", None)
    for cell in cells:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _texts(cell) -> list[str]:
    return ["".join(o.get("text", [])) for o in cell.get("outputs", []) if o.get("output_type") == "stream"]


def sync(folder: Path = ROOT / "notebooks") -> list[str]:
    """Write each notebook's Colab badge (first markdown cell), install cell and GPU runtime metadata from
    :mod:`gifkit.experiments.nbkit` (``metadata.gifkit.extras``: the pip extras it installs; ``gpu``: whether it
    asks Colab for a GPU). Returns the names of the notebooks it changed."""
    import re

    from gifkit.experiments.nbkit import COLAB_GPU, badge, install_cell

    changed = []
    for path in notebooks(folder):
        text = path.read_text()
        nb = json.loads(text)
        meta = nb.setdefault("metadata", {}).setdefault("gifkit", {})
        extras = meta.setdefault("extras", ["mini"])
        first = nb["cells"][0]
        src = "".join(first["source"])
        pattern = r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)"
        new = re.sub(pattern, badge(path.name).replace("\\", "\\\\"), src) if re.search(pattern, src) else \
            src.replace("\n\n", "\n\n" + badge(path.name) + "\n\n", 1)
        first["source"] = new.splitlines(keepends=True)
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and 'find_spec("gifkit")' in "".join(cell["source"]):
                cell["source"] = install_cell(extras).splitlines(keepends=True)
                break
        for key in COLAB_GPU:
            nb["metadata"].pop(key, None)
        if meta.get("gpu", True):
            nb["metadata"].update(json.loads(json.dumps(COLAB_GPU)))
        if nb != json.loads(text):  # content, not key order
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path.name)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=list(PROFILE_NAMES))
    p.add_argument("--out", type=Path, default=None, help="default: results/<profile>/notebooks")
    p.add_argument("--only", nargs="*", help="notebook numbers (05) or name parts (main_results)")
    p.add_argument("--param", action="append", default=None, metavar="NAME=VALUE",
                   help="a papermill parameter (a Python literal, else text); repeatable")
    p.add_argument("--in-place", action="store_true", help="write the outputs into notebooks/ (the committed ones), "
                                                          "running in a fresh output folder")
    p.add_argument("--refresh", action="store_true", help="--in-place, each notebook on the profile its committed "
                                                         "outputs come from (metadata.gifkit.committed_profile)")
    p.add_argument("--sync", action="store_true", help="write the Colab badges, install cells and GPU metadata "
                                                      "from gifkit.experiments.nbkit, then stop")
    a = p.parse_args(argv)
    if a.sync:
        changed = sync()
        print(f"synced {len(changed)} notebook(s)" + (": " + ", ".join(changed) if changed else ""))
        return 0
    failures = refresh(a.only) if a.refresh else run(a.profile, a.out, a.only, a.in_place, parse_params(a.param))
    if failures:
        print(f"{len(failures)} notebook(s) failed: " + "; ".join(f"{n} ({e})" for n, e in failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
