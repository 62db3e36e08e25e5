"""Execute the numbered notebooks headlessly with papermill.

    python -m gifkit.experiments.notebooks --profile smoke                    # every notebook -> results/smoke/notebooks/
    python -m gifkit.experiments.notebooks --profile mini --only 05 06        # some, by number or name part
    python -m gifkit.experiments.notebooks --profile mini --only 05 --param ratio=5 --param "seeds=[0, 1]"
    python -m gifkit.experiments.notebooks --profile mini --only 05 --in-place   # refresh notebooks/05_*.ipynb

(``make notebooks NB="05 06" PROFILE=mini PARAMS="ratio=5 seeds=[0,1]"`` is the same.) Each notebook's
``parameters`` cell gets ``profile``, ``out_dir`` and the ``--param`` values (Python literals, else text);
executed copies go to ``results/<profile>/notebooks/``, their CSV and PNG to ``results/<profile>/<name>/``.
``--in-place`` writes the executed notebook back into ``notebooks/`` (the committed outputs) and runs it in a
fresh, empty output folder, so nothing stale is resumed into what is committed. A failure names the notebook
and the cell, and the remaining notebooks still run. A notebook whose metadata lists the profiles it supports
(``metadata.gifkit.profiles``) is skipped, with a line saying so, under any other profile.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

from gifkit.config import PROFILE_NAMES

__all__ = ["ROOT", "notebooks", "committed_profile", "supported_profiles", "parse_params", "run", "refresh", "main"]

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
        params: dict | None = None, kernel: str = "python3", folder: Path = ROOT / "notebooks") -> list[tuple[str, str]]:
    """Execute the notebooks; returns ``[(name, error)]`` for the ones that failed (skipped ones are not)."""
    import papermill as pm

    out = Path(out) if out is not None else ROOT / "results" / profile / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for nb in notebooks(folder, only=only):
        if profile not in supported_profiles(nb):
            print(f"skip  {nb.name}: written for the {' and '.join(supported_profiles(nb))} profile(s), "
                  f"not {profile}")
            continue
        target = nb if in_place else out / nb.name
        fresh = tempfile.mkdtemp(prefix=f"gifkit-{nb.stem}-") if in_place else None
        out_dir = f"{fresh}/{{profile}}" if fresh else str(ROOT / "results" / profile / nb.stem)
        values = {"profile": profile, "out_dir": out_dir, **(params or {})}
        t = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(target), parameters=values, kernel_name=kernel, cwd=str(ROOT),
                                progress_bar=False)
            if in_place:
                _drop_injected_parameters(target)
            print(f"ok    {nb.name}  {time.perf_counter() - t:.0f} s -> {target}")
        except pm.PapermillExecutionError as e:
            failures.append((nb.name, f"cell {e.exec_count}: {e.ename}: {e.evalue}"))
            print(f"FAIL  {nb.name}: cell {e.exec_count}: {e.ename}: {e.evalue} (see {target})", file=sys.stderr)
        except Exception as e:  # kernel died, bad JSON, ...
            failures.append((nb.name, f"{type(e).__name__}: {e}"))
            print(f"FAIL  {nb.name}: {type(e).__name__}: {e}", file=sys.stderr)
    return failures


def refresh(only: list[str] | None = None, folder: Path = ROOT / "notebooks") -> list[tuple[str, str]]:
    """Re-execute notebooks in place, each on the profile its committed outputs come from
    (:func:`committed_profile`), in a fresh output folder."""
    failures = []
    for nb in notebooks(folder, only=only):
        failures += run(committed_profile(nb), only=[nb.stem], in_place=True, folder=folder)
    return failures


def _drop_injected_parameters(path: Path) -> None:
    """Fold papermill's ``injected-parameters`` cell back into the ``parameters`` cell's values, so a committed
    notebook shows the parameters it ran with in one place (and stays runnable top to bottom)."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    idx = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    if not idx:
        return
    injected = "".join(cells[idx[0]]["source"])
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    lines = "".join(params["source"]).splitlines()
    values = dict(line.split(" = ", 1) for line in injected.splitlines() if " = " in line and not line.startswith("#"))
    values.pop("out_dir", None)  # the committed notebook keeps its default output folder
    new = []
    for line in lines:
        name = line.split("=", 1)[0].strip()
        if name in values and "=" in line:
            comment = line.split("#", 1)[1] if "#" in line else ""
            head = f"{name} = {values[name]}"
            new.append(f"{head:<26} # {comment.strip()}" if comment else head)
        else:
            new.append(line)
    params["source"] = [ln + "\n" for ln in new[:-1]] + [new[-1]] if new else []
    del cells[idx[0]]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


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
    a = p.parse_args(argv)
    failures = refresh(a.only) if a.refresh else run(a.profile, a.out, a.only, a.in_place, parse_params(a.param))
    if failures:
        print(f"{len(failures)} notebook(s) failed: " + "; ".join(f"{n} ({e})" for n, e in failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
