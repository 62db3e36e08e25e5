"""Execute the numbered notebooks headlessly with papermill.

    python -m gifkit.experiments.notebooks --profile smoke            # -> results/smoke/<name>.ipynb (+ CSV, PNG)
    python -m gifkit.experiments.notebooks --profile smoke --in-place # refresh the committed smoke outputs

Each notebook's ``parameters`` cell gets ``profile`` and ``out_dir``; a failure
names the notebook and the cell, and the remaining notebooks still run. A notebook
whose metadata lists the profiles it supports (``metadata.gifkit.profiles``, e.g.
``["smoke", "paper"]`` for a study the mini profile has no models for) is skipped,
with a line saying so, under any other profile.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "mini", "paper")


def notebooks(folder: Path = ROOT / "notebooks", only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` in order (optionally those whose name contains a filter)."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not only or any(o in p.stem for o in only)]


def supported_profiles(path: Path) -> list[str]:
    """The profiles a notebook declares in ``metadata.gifkit.profiles`` (all three when it declares none)."""
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return list(meta.get("gifkit", {}).get("profiles", PROFILES))


def run(profile: str = "smoke", out: Path | None = None, only: list[str] | None = None, in_place: bool = False,
        kernel: str = "python3", folder: Path = ROOT / "notebooks") -> list[tuple[str, str]]:
    """Execute the notebooks; returns ``[(name, error)]`` for the ones that failed (skipped ones are not)."""
    import papermill as pm

    if in_place and profile != "smoke":
        raise ValueError("--in-place refreshes the committed smoke outputs; use --profile smoke")
    out = out or ROOT / "results" / profile
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for nb in notebooks(folder, only=only):
        if profile not in supported_profiles(nb):
            print(f"skip  {nb.name}: written for the {' and '.join(supported_profiles(nb))} profile(s), "
                  f"not {profile}")
            continue
        target = nb if in_place else out / nb.name
        params = {} if in_place else {"profile": profile, "out_dir": str(out / nb.stem)}  # in place: defaults
        t = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(target), parameters=params, kernel_name=kernel, cwd=str(ROOT),
                                progress_bar=False)
            print(f"ok    {nb.name}  {time.perf_counter() - t:.0f} s -> {target}")
        except pm.PapermillExecutionError as e:
            failures.append((nb.name, f"cell {e.exec_count}: {e.ename}: {e.evalue}"))
            print(f"FAIL  {nb.name}: cell {e.exec_count}: {e.ename}: {e.evalue} (see {target})", file=sys.stderr)
        except Exception as e:  # kernel died, bad JSON, ...
            failures.append((nb.name, f"{type(e).__name__}: {e}"))
            print(f"FAIL  {nb.name}: {type(e).__name__}: {e}", file=sys.stderr)
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=list(PROFILES))
    p.add_argument("--out", type=Path, default=None, help="default: results/<profile>")
    p.add_argument("--only", nargs="*", help="run notebooks whose name contains one of these")
    p.add_argument("--in-place", action="store_true", help="write outputs into notebooks/ (committed smoke outputs)")
    a = p.parse_args(argv)
    failures = run(a.profile, a.out, a.only, a.in_place)
    if failures:
        print(f"{len(failures)} notebook(s) failed: " + "; ".join(f"{n} ({e})" for n, e in failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
