"""The numbered notebooks: their conventions, their Colab cells (derived from one URL and release), committed
outputs that are never stale and show the committed results, the headless runner, and every notebook executed on
the smoke profile with papermill (what `make test` runs in place of nbval): its cells run, its files are written,
the tables it shows hold the numbers of its CSVs and its own printed checks hold.

Committed outputs come from the profile in ``metadata.gifkit.committed_profile`` (``make notebooks-refresh``):
``mini`` where the mini profile can honestly run the study, ``smoke`` (with a banner) where only large priors can.
"""
import csv
import json
import os
import re
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gifkit.experiments import nbkit
from gifkit.experiments.notebooks import (committed_profile, finish_in_place, notebooks, parse_params, run,
                                          supported_profiles, sync)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = notebooks()
IDS = [p.stem for p in NOTEBOOKS]
MINI = {"00", "01", "05", "06", "07", "08", "09", "10"}  # the studies the mini profile can honestly stand in for
METHOD = {"00", "02", "03", "04"}  # notebooks that teach the method itself: equations and the pipeline figure


def load(path):
    return json.loads(Path(path).read_text())


def source(cell):
    return "".join(cell["source"])


def text_outputs(cell):
    """Every text a code cell shows: streams, plain text and HTML of results and displays, error values."""
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append("".join(o["text"]))
        elif o["output_type"] in ("execute_result", "display_data"):
            out += ["".join(o["data"].get(k, "")) for k in ("text/plain", "text/html")]
        elif o["output_type"] == "error":
            out.append(f"{o['ename']}: {o['evalue']}")
    return "\n".join(out)


def stale_outputs(nb) -> list[str]:
    """What makes committed outputs stale or broken: errors, NaN where a number should be, a resumed run that
    wrote nothing, cells not run top to bottom, the wall time not filled in."""
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    if not all(isinstance(n, int) for n in counts) or counts != sorted(counts):
        problems.append("cells were not all executed, top to bottom")
    for c in code:
        text = text_outputs(c)
        if any(o["output_type"] == "error" for o in c.get("outputs", [])):
            problems.append(f"an error: {text[:200]}")
        if re.search(r"(?<![\w.])nan(?![\w])", text, re.I):
            problems.append(f"NaN in an output: {source(c)[:60]!r}")
        if re.search(r"\b0 written\b", text):
            problems.append(f"'0 written' (a resumed run): {source(c)[:60]!r}")
    shown = "\n".join(text_outputs(c) for c in code)
    if nbkit.WALL_PLACEHOLDER in shown or not re.search(r"wall time: \d", shown):
        problems.append("the header's wall time is not filled in")
    return problems


def run_problems(nb) -> list[str]:
    """What says an executed notebook did not run through: a code cell not executed, or not in order, or an error."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    problems = [] if all(isinstance(n, int) for n in counts) and counts == sorted(counts) else ["cells not all run"]
    return problems + [f"an error: {text_outputs(c)[:200]}" for c in code
                       if any(o["output_type"] == "error" for o in c.get("outputs", []))]


def written_files(nb) -> list[str]:
    """The files a notebook always writes: ``to_csv``/``savefig``/``save`` of ``out / "<name>"`` on an unindented
    line (an indented one may sit under a condition)."""
    names = []
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            names += re.findall(r'^\S.*?(?:to_csv|savefig|\.save)\(out / "([^"{}]+)"', source(c), re.M)
    return names


def missing_files(nb, folder: Path) -> list[str]:
    return [n for n in written_files(nb) if not (folder / n).is_file() or (folder / n).stat().st_size == 0]


def failed_checks(nb) -> list[str]:
    """Lines the notebook prints as a check of its own, ``<what is checked>: True``, that read False."""
    return [line for c in nb["cells"] if c["cell_type"] == "code"
            for line in text_outputs(c).splitlines() if re.search(r":\s+False\s*$", line)]


class HtmlTables(HTMLParser):
    """Every table of an HTML output (pandas' ``to_html``) as rows of cell texts, header and index cells included."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def shown_tables(nb):
    """``[{column: shown text}]`` per displayed table with one header row (index and elided cells left out)."""
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            for table in HtmlTables("".join(o.get("data", {}).get("text/html", ""))).tables:
                header, body = table[0], table[1:]
                if header and all(len(r) == len(header) for r in body):
                    yield [{k: v for k, v in zip(header, r) if k and k != "..." and v != "..."} for r in body
                           if any(v != "..." for v in r)]


def same_value(shown: str, stored: str) -> bool:
    """A displayed cell shows a stored CSV value: equal text, an elided prefix ("..."), "—" for a missing value,
    or the number rounded to the digits shown."""
    if shown == stored:
        return True
    if shown.endswith("..."):
        return stored.startswith(shown[:-3])
    if shown == "—":
        return stored in ("", "nan", "NaN", "None")
    try:
        digits, value, number = Decimal(shown.replace(",", "")).as_tuple().exponent, float(shown.replace(",", "")), \
            float(stored)
    except (InvalidOperation, ValueError):
        return False
    return abs(number - value) <= 0.5 * 10.0 ** digits + 1e-9 * abs(number)


def tables_against_csvs(nb, folder: Path) -> tuple[int, list[str]]:
    """Every displayed table whose columns are all in a CSV of ``folder`` must show, row by row, a row of one such
    CSV (numbers to the digits shown). Returns the number of tables checked and the ones no CSV holds."""
    csvs = [list(csv.DictReader(f.open(newline=""))) for f in sorted(folder.rglob("*.csv"))]
    checked, unmatched = 0, []
    for rows in shown_tables(nb):
        columns = set().union(*rows) if rows else set()
        candidates = [stored for stored in csvs if stored and columns <= set(stored[0])]
        if not rows or not candidates:
            continue
        checked += 1
        if not any(all(any(all(same_value(v, r[k]) for k, v in row.items()) for r in stored) for row in rows)
                   for stored in candidates):
            unmatched.append(f"a table of columns {sorted(columns)} shows rows no CSV of {folder.name} holds")
    return checked, unmatched


# ----------------------------------------------------------------------------- conventions


def test_there_are_the_fourteen_notebooks_and_the_committed_profiles_are_as_decided():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(14)]
    for p in NOTEBOOKS:
        want = "mini" if p.stem[:2] in MINI else "smoke"
        assert committed_profile(p) == want, p.name
        assert want in supported_profiles(p) and "smoke" in supported_profiles(p)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_teaches_and_is_organised_as_the_others(path):
    nb = load(path)
    cells = nb["cells"]
    md = [source(c) for c in cells if c["cell_type"] == "markdown"]
    code = [c for c in cells if c["cell_type"] == "code"]
    intro = md[0]
    assert nbkit.badge(path.name) in intro, "the Colab badge comes from nbkit (python -m gifkit.experiments.notebooks --sync)"
    assert "**What you should see" in intro and "**Needs and cost" in intro
    if committed_profile(path) == "smoke":
        assert nbkit.SMOKE_BANNER in intro, "smoke outputs carry the banner in the top cell"
    params = code[0]
    assert "parameters" in params["metadata"].get("tags", [])
    psrc = source(params)
    assert re.search(rf'^profile = os.environ.get\("GIFKIT_PROFILE", "{committed_profile(path)}"\)', psrc, re.M), \
        "the parameters show the committed profile, behind the GIFKIT_PROFILE switch"
    for name in ("out_dir", "drive", "device"):
        assert re.search(rf"^{name} = ", psrc, re.M), f"parameter {name}"
    if any("out=grid_dir" in source(c) or "**grid" in source(c) for c in code):
        assert re.search(r'^grid_dir = "results/\{profile\}/work/grid"', psrc, re.M), "the shared grid folder"
    if any("expand" in source(c) for c in code):
        assert re.search(r"^batch_size = ", psrc, re.M), "a batch-size parameter for small GPUs"
    assert source(code[1]) == nbkit.install_cell(nb["metadata"]["gifkit"]["extras"]), "install cell from nbkit"
    assert "start_run(profile)" in source(code[2]), "the header (profile, date, machine, wall time) comes first"
    work = next(i for i, c in enumerate(code) if re.search(r"\b(run_grid|expand_method|expand|run_alia|finetune_sd|"
                                                           r"imagine_batch)\(", source(c)))
    assert any("print(plan.summary())" in source(c) for c in code[:work]), "the cost plan is printed before any work"
    titles = [m.splitlines()[0] for m in md]
    assert "## Paper vs this run" in titles and titles[-1] == "## Questions for the reader"
    assert len(re.findall(r"^\d\. ", md[-1], re.M)) >= 2, "two or three questions for the reader"
    assert source(code[-1]).strip() == "run.finish()"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem[:2] in METHOD], ids=lambda p: p.stem)
def test_method_notebooks_state_the_equations_next_to_the_code_and_draw_the_pipeline(path):
    nb = load(path)
    md = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for latex in (r"(1+z_k)\odot f", r"\mathcal P_{f,\epsilon}", r"S_{\mathrm{inf}}", r"S_{\mathrm{div}}",
                  r"\mathrm{KL}", r"H(p'_k)-H(p)", r"\mathrm{sign}(\nabla_z S)"):
        assert latex in md, f"{latex} (Eq. 1, 5, 6, the score or the update)"
    assert any("pipeline_figure(" in source(c) for c in nb["cells"] if c["cell_type"] == "code")


def test_the_three_prior_notebooks_teach_what_differs():
    """02-04 are not one template: each has its own sections about its prior's latent."""
    def own(stem):
        nb = load(ROOT / "notebooks" / f"{stem}.ipynb")
        return {source(c) for c in nb["cells"]}
    sd, dalle, mae = own("02_gif_sd"), own("03_gif_dalle"), own("04_gif_mae")
    assert len(sd - dalle - mae) >= 5 and len(dalle - sd - mae) >= 5 and len(mae - sd - dalle) >= 5


def test_files_cited_in_the_notebooks_exist():
    cited = set()
    for p in NOTEBOOKS:
        for c in load(p)["cells"]:
            if c["cell_type"] == "markdown":
                cited |= set(re.findall(r"`((?:gifkit|docs|notebooks|tests|scripts)/[\w./-]+\.(?:py|md|ipynb|csv))`",
                                        source(c)))
    missing = sorted(f for f in cited if not (ROOT / f).exists())
    assert not missing, f"notebooks cite files the repository lacks: {missing}"


# ----------------------------------------------------------------------------- Colab


def test_repository_url_and_release_live_in_one_place_and_have_the_right_form():
    from gifkit import __version__

    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", nbkit.REPOSITORY)
    assert nbkit.RELEASE == f"v{__version__}"
    slug = nbkit.REPOSITORY.removeprefix("https://github.com/")
    assert nbkit.colab_url("05_main_results.ipynb") == \
        f"https://colab.research.google.com/github/{slug}/blob/{nbkit.RELEASE}/notebooks/05_main_results.ipynb"
    assert nbkit.install_spec(("mini",)) == f"gifkit[mini] @ git+{nbkit.REPOSITORY}@{nbkit.RELEASE}"
    for p in NOTEBOOKS:  # no other repository, and no other release, in any notebook
        text = p.read_text()
        assert set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", text)) == {slug}, p.name
        assert set(re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/", text)) == \
            {(slug, nbkit.RELEASE)}, p.name
        assert set(re.findall(r"@(v[\d.]+)", text)) == {nbkit.RELEASE}, p.name
    readme = (ROOT / "README.md").read_text()
    assert nbkit.install_spec(("mini",)) in readme, "the README's Colab install line matches nbkit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_metadata_asks_for_a_gpu_and_the_install_keeps_colab_torch(path):
    nb = load(path)
    meta = nb["metadata"]
    assert meta["gifkit"]["gpu"] is True and meta["accelerator"] == "GPU" and meta["colab"]["gpuType"] == "T4"
    assert set(meta["gifkit"]["extras"]) <= {"mini", "fid"}, "extras that exist and a Colab runtime can take"
    cell = nbkit.install_cell(meta["gifkit"]["extras"])
    assert '"torch", "torchvision"' in cell and "importlib.metadata.version(p)" in cell
    assert "@" + nbkit.RELEASE in cell, "pinned to the release"


def test_sync_leaves_the_committed_notebooks_unchanged(tmp_path):
    import shutil

    for p in NOTEBOOKS:
        shutil.copy(p, tmp_path / p.name)
    assert sync(tmp_path) == []
    nb = load(tmp_path / NOTEBOOKS[0].name)
    nb["cells"][0]["source"] = ["# title\n", "\n", "[![Open In Colab](https://x/badge.svg)](https://old/url)\n"]
    nb["metadata"].pop("accelerator")
    (tmp_path / NOTEBOOKS[0].name).write_text(json.dumps(nb))
    assert sync(tmp_path) == [NOTEBOOKS[0].name]
    fixed = load(tmp_path / NOTEBOOKS[0].name)
    assert nbkit.badge(NOTEBOOKS[0].name) in source(fixed["cells"][0]) and fixed["metadata"]["accelerator"] == "GPU"


# ----------------------------------------------------------------------------- committed outputs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_clean_and_current(path):
    nb = load(path)
    assert stale_outputs(nb) == []
    shown = "\n".join(text_outputs(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert f"profile: {committed_profile(path)} (" in shown, "the header names the profile of the outputs"
    assert f"Cost plan ({committed_profile(path)} profile)" in shown
    assert nb["metadata"]["gifkit"]["last_run"]["profile"] == committed_profile(path)
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 1


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if committed_profile(p) == "mini"], ids=lambda p: p.stem)
def test_committed_outputs_show_the_committed_results(path):
    """The committed outputs of a mini notebook and its committed results folder come from one run: every file the
    notebook writes is there, and every table it shows holds the numbers of the CSV it was saved to."""
    nb, folder = load(path), ROOT / "results" / "mini" / path.stem
    assert missing_files(nb, folder) == []
    checked, unmatched = tables_against_csvs(nb, folder)
    assert checked >= 1 and unmatched == []
    assert failed_checks(nb) == []


def test_the_output_checks_can_fail(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"method": ["a", "b"], "accuracy": [71.234, 80.0], "note": ["x" * 60, None]})
    table.to_csv(tmp_path / "runs.csv", index=False)
    shown = nbkit.show(table, 2)
    shown["note"] = [v[:47] + "..." if isinstance(v, str) and len(v) > 50 else v for v in shown["note"]]
    cell = {"cell_type": "code", "execution_count": 1, "outputs": [
        {"output_type": "display_data", "data": {"text/html": shown.to_html()}},
        {"output_type": "stream", "name": "stdout", "text": ["it works: True\n"]}],
        "source": ['table.to_csv(out / "runs.csv", index=False)\n', "if x:\n", '    g.savefig(out / "maybe.png")']}
    nb = {"cells": [cell]}
    assert written_files(nb) == ["runs.csv"] and missing_files(nb, tmp_path) == [] and failed_checks(nb) == []
    assert tables_against_csvs(nb, tmp_path) == (1, []) and run_problems(nb) == []
    pd.DataFrame({"method": ["a", "b"], "accuracy": [71.244, 80.0], "note": ["x" * 60, None]}).to_csv(
        tmp_path / "runs.csv", index=False)  # 71.24 where 71.23 is shown
    assert tables_against_csvs(nb, tmp_path)[1] != []
    (tmp_path / "runs.csv").unlink()
    assert missing_files(nb, tmp_path) == ["runs.csv"] and tables_against_csvs(nb, tmp_path) == (0, [])
    cell["outputs"][1]["text"] = ["it works: False\n"]
    cell["execution_count"] = None
    assert failed_checks(nb) == ["it works: False"] and run_problems(nb) == ["cells not all run"]


def test_the_staleness_check_can_fail():
    good = {"cells": [{"cell_type": "code", "execution_count": 1, "source": [], "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["wall time: 3 s\n", "40 written, 0 already there\n",
                                                             "annotation, 0.5 nanometres\n"]}]}]}
    assert stale_outputs(good) == []
    for bad in ("expansion: 0 written, 40 already there", "seconds per image NaN", "accuracy   nan",
                nbkit.WALL_PLACEHOLDER):
        nb = json.loads(json.dumps(good))
        nb["cells"][0]["outputs"][0]["text"] = ["wall time: 3 s\n", bad + "\n"] if bad != nbkit.WALL_PLACEHOLDER \
            else [bad]
        assert stale_outputs(nb), bad
    nb = json.loads(json.dumps(good))
    nb["cells"].append({"cell_type": "code", "execution_count": None, "source": [], "outputs": []})
    assert stale_outputs(nb)


# ----------------------------------------------------------------------------- the runner


def test_parse_params_reads_literals_and_text():
    assert parse_params(["ratio=5", "seeds=[0, 1]", "dataset=smoke", "mini={'steps': 60}"]) == \
        {"ratio": 5, "seeds": [0, 1], "dataset": "smoke", "mini": {"steps": 60}}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["ratio"])


def test_runner_skips_a_notebook_under_a_profile_it_does_not_support(tmp_path, capsys):
    nb = {"cells": [], "metadata": {"gifkit": {"profiles": ["smoke", "paper"]}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "99_only_smoke_and_paper.ipynb").write_text(json.dumps(nb))
    assert run("mini", out=tmp_path / "out", folder=tmp_path) == []
    assert "skip  99_only_smoke_and_paper.ipynb" in capsys.readouterr().out
    assert not (tmp_path / "out" / "99_only_smoke_and_paper.ipynb").exists()


def test_finish_in_place_keeps_the_defaults_and_writes_the_wall_time(tmp_path):
    nb = {"metadata": {"papermill": {}}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": 1, "outputs": [],
         "source": ["import os\n", 'profile = os.environ.get("GIFKIT_PROFILE", "smoke")  # smoke | mini\n',
                    "seeds = None               # None: 5 seeds\n", 'out_dir = "results/{profile}/x"']},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "execution_count": 2, "outputs": [],
         "source": ['profile = "mini"\n', 'out_dir = "results/mini/x"\n', "seeds = [0]"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 3, "source": [], "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["profile: mini\n", nbkit.WALL_PLACEHOLDER + "\n"]}]}]}
    path = tmp_path / "00_x.ipynb"
    path.write_text(json.dumps(nb))
    finish_in_place(path, "mini", 95.0, {"seeds": [0]})
    done = load(path)
    assert len(done["cells"]) == 2 and "papermill" not in done["metadata"]
    assert source(done["cells"][0]).splitlines() == ["import os",
                                                     'profile = os.environ.get("GIFKIT_PROFILE", "mini")  # smoke | mini',
                                                     "seeds = None               # None: 5 seeds",
                                                     'out_dir = "results/{profile}/x"']
    shown = "".join(done["cells"][1]["outputs"][0]["text"])
    assert "wall time: 1.6 min" in shown and "parameters given to this run: seeds=[0]" in shown
    assert done["metadata"]["gifkit"]["last_run"]["wall_seconds"] == 95.0
    assert [c["execution_count"] for c in done["cells"]] == [1, 2]  # no gap where the injected cell was


def test_finish_in_place_shows_one_wall_time_the_one_the_last_cell_printed(tmp_path):
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": 1, "outputs": [],
              "source": ['profile = "smoke"']},
             {"cell_type": "code", "metadata": {}, "execution_count": 3, "source": [], "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": [nbkit.WALL_PLACEHOLDER + "\n"]}]},
             {"cell_type": "code", "metadata": {}, "execution_count": 4, "source": ["run.finish()"], "outputs": [
                 {"output_type": "stream", "name": "stdout",
                  "text": ["wall time of this run: 41 s (profile smoke, 2026-01-01 10:00 UTC, ...)\n"]}]}]
    path = tmp_path / "00_x.ipynb"
    path.write_text(json.dumps({"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": cells}))
    finish_in_place(path, "smoke", 47.0, {})
    done = load(path)
    assert "".join(done["cells"][1]["outputs"][0]["text"]) == "wall time: 41 s (printed by the last cell)\n"
    assert [c["execution_count"] for c in done["cells"]] == [1, 2, 3]


# ----------------------------------------------------------------------------- executed on the smoke profile

EXECUTED = os.environ.get("GIFKIT_NBVAL_EXECUTED")  # where notebooks/conftest.py saved what `make nbval` ran


@pytest.mark.nbval_executed
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if committed_profile(p) != "smoke"], ids=lambda p: p.stem)
def test_notebook_ran_on_the_smoke_profile_through_the_switch(path):
    """A notebook committed from the mini profile, as `make nbval` ran it (``GIFKIT_PROFILE=smoke pytest
    --nbval-lax``: the kernel in ``notebooks/``, the profile from the switch, no output compared, as none of these
    notebooks prints on the smoke profile what it printed on mini): every cell ran, every file the notebook writes is
    in ``results/smoke/<name>`` (resolved from the repository root), the tables it shows hold the numbers of the CSVs
    it wrote, and no check it prints of its own reads False. (The notebooks committed from the smoke profile run
    under strict nbval, which compares every output with the committed one; the next test checks those.)"""
    assert EXECUTED, "run by `make nbval` after nbval, with GIFKIT_NBVAL_EXECUTED set"
    executed = Path(EXECUTED) / path.name
    assert executed.is_file(), f"nbval did not run {path.name} (make nbval runs every notebook)"
    nb = load(executed)
    assert run_problems(nb) == []
    shown = "\n".join(text_outputs(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "profile: smoke (" in shown and "Cost plan (smoke profile)" in shown and "wall time of this run" in shown
    folder = ROOT / "results" / "smoke" / path.stem
    assert missing_files(nb, folder) == [] and any(n.endswith(".csv") for n in written_files(nb))
    checked, unmatched = tables_against_csvs(nb, folder)
    assert checked >= 1 and unmatched == []
    assert failed_checks(nb) == []
    assert not (ROOT / "notebooks" / "results" / "smoke" / path.stem).exists(), "it wrote under notebooks/"
    # lax compares only cells marked # NBVAL_CHECK_OUTPUT: a cell that shows on smoke what it showed on mini must be
    committed = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    ran = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(committed) == len(ran)
    for mini, smoke in zip(committed, ran):
        text = re.sub(r"<Figure size [^>]*>", "", text_outputs(mini)).strip()
        if text and text == re.sub(r"<Figure size [^>]*>", "", text_outputs(smoke)).strip():
            assert "NBVAL_CHECK_OUTPUT" in source(mini), f"mark it for nbval: {source(mini)[:60]!r}"


def test_the_profile_switch_is_honoured_and_papermill_values_win(tmp_path, monkeypatch):
    """``GIFKIT_PROFILE`` sets the profile of every parameters cell; a value papermill injects wins over it, and
    a refresh writes the switch back with the profile it ran."""
    for path in NOTEBOOKS:
        src = source(next(c for c in load(path)["cells"] if "parameters" in c["metadata"].get("tags", [])))
        scope = {}
        monkeypatch.setenv(nbkit.PROFILE_VARIABLE, "smoke")
        exec(src, scope)  # noqa: S102 - the notebook's own parameters cell
        assert scope["profile"] == "smoke", path.name
        monkeypatch.delenv(nbkit.PROFILE_VARIABLE)
        exec(src + '\nprofile = "paper"\n', scope)  # noqa: S102 - papermill's injected cell comes after
        assert scope["profile"] == "paper"
        exec(src, scope)  # noqa: S102
        assert scope["profile"] == committed_profile(path), path.name
        assert nbkit.parameter_types(src)["profile"] == (str | None, committed_profile(path))


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if committed_profile(p) == "smoke"], ids=lambda p: p.stem)
def test_smoke_committed_outputs_ran_through_and_pass_their_own_checks(path):
    """What nbval (`make nbval`) does not check of a notebook committed from the smoke profile: its committed run
    went through in order, printed the header and the cost plan, and no check it prints of its own reads False."""
    nb = load(path)
    assert run_problems(nb) == [] and failed_checks(nb) == []
    shown = "\n".join(text_outputs(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "profile: smoke (" in shown and "Cost plan (smoke profile)" in shown and "wall time of this run" in shown
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"], "stderr output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_show_one_wall_time_and_cells_numbered_in_order(path):
    """The header and the last cell print the same wall time; the code cells are numbered 1, 2, 3, ..."""
    nb = load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    shown = "\n".join(text_outputs(c) for c in code)
    assert len(re.findall(r"^wall time", shown, re.M)) == 2, "the header's line and the last cell's"
    assert len(set(re.findall(r"^wall time[^:]*: (\S+ \S+)", shown, re.M))) == 1, "two different wall times"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))


def intro(name: str) -> str:
    """The first markdown cell of a notebook, its whitespace collapsed (sentences wrap across lines)."""
    nb = load(next(p for p in NOTEBOOKS if p.stem.startswith(name)))
    return " ".join(source(nb["cells"][0]).split())


def test_what_07_says_you_should_see_is_what_its_committed_results_show():
    import pandas as pd

    acc = pd.read_csv(ROOT / "results" / "mini" / "07_ood" / "corrupted_accuracy.csv")
    mean = acc.groupby(["method", "corruption", "severity"])["accuracy"].mean().unstack()
    drop = (mean[1] - mean[5]).unstack()  # [method, corruption]: points lost from severity 1 to 5
    assert "accuracy falling steeply with severity under contrast and brightness for every arm, and by at most " \
           "about 10 points from severity 1 to 5 under the other five corruptions" in intro("07")
    steep = ["brightness", "contrast"]
    assert len(drop) == 3 and (drop[steep] > 20).all().all()
    assert drop.drop(columns=steep).shape[1] == 5 and (drop.drop(columns=steep) <= 10.5).all().all()


def test_what_08_says_you_should_see_is_what_its_committed_results_show():
    import pandas as pd

    t = pd.read_csv(ROOT / "results" / "mini" / "08_long_tail" / "table25_this_run.csv").set_index(["arm", "loss"])
    assert "with cross-entropy both arms best on the many-shot classes; Balanced Softmax raising the few-shot " \
           "accuracy of both arms at some cost on the many-shot ones, so much that GIF-VAE with it does best on " \
           "the few-shot classes" in intro("08")
    groups = ["many", "medium", "few"]
    for arm in ("original", "gif-vae"):
        assert t.loc[(arm, "ce"), groups].idxmax() == "many"
        assert t.loc[(arm, "balanced_softmax"), "few"] > t.loc[(arm, "ce"), "few"]
        assert t.loc[(arm, "balanced_softmax"), "many"] < t.loc[(arm, "ce"), "many"]
    assert t.loc[("gif-vae", "balanced_softmax"), groups].idxmax() == "few"


def test_no_difference_is_printed_between_numbers_measured_on_different_data():
    """run_minus_paper only where the run's data is the paper's: the mini and smoke outputs hold none."""
    for path in NOTEBOOKS:
        shown = "\n".join(text_outputs(c) for c in load(path)["cells"] if c["cell_type"] == "code")
        assert "run_minus_paper" not in shown, path.name


def test_declared_profiles_are_known():
    from gifkit.config import PROFILE_NAMES

    for p in NOTEBOOKS:
        assert set(supported_profiles(p)) <= set(PROFILE_NAMES), p.name


def test_an_in_place_run_starts_from_a_fresh_output_folder_and_fills_the_header(tmp_path):
    """What `make notebooks-refresh` does to one notebook: the old output folder is set aside (nothing is resumed
    into the committed outputs), the wall time goes into the header, profile into the parameters cell."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": ['profile = "smoke"          # smoke | mini\n', 'out_dir = "results/{profile}/98_tiny"']},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": [
            "from pathlib import Path\n", "from gifkit.experiments.nbkit import start_run\n", "run = start_run(profile)\n",
            "out = Path(out_dir.format(profile=profile))\n",
            "print('already there:', sorted(p.name for p in out.glob('*')) if out.is_dir() else [])\n",
            "out.mkdir(parents=True, exist_ok=True); (out / 'made.txt').write_text('x')"]}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                       "gifkit": {"profiles": ["smoke"]}}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "98_tiny.ipynb").write_text(json.dumps(nb))
    old = tmp_path / "results" / "smoke" / "98_tiny"
    old.mkdir(parents=True)
    (old / "stale.txt").write_text("from an earlier run")
    assert run("smoke", in_place=True, folder=folder, results=tmp_path / "results") == []
    done = load(folder / "98_tiny.ipynb")
    shown = text_outputs(done["cells"][1])
    assert "already there: []" in shown, "the run did not see the earlier run's files"
    assert re.search(r"wall time: \d+ s \(the whole notebook", shown) and nbkit.WALL_PLACEHOLDER not in shown
    assert (tmp_path / "results" / "smoke" / "98_tiny.previous" / "stale.txt").is_file()
    assert (old / "made.txt").is_file() and not (old / "stale.txt").exists()
    assert source(done["cells"][0]).startswith('profile = os.environ.get("GIFKIT_PROFILE", "smoke")')
    assert len(done["cells"]) == 2


def test_committed_grids_have_no_black_tiles_and_name_their_columns():
    """01's class-maintained grid: 5 seeds, each beside the 5 candidates it kept, no empty (black) tile; 05's class
    grid carries a header strip naming the seed column and each arm."""
    import numpy as np
    from PIL import Image

    grid = np.asarray(Image.open(ROOT / "results" / "mini" / "01_preliminary_studies" / "grid_class_maintained.png")
                      .convert("L"), dtype=float)
    rows, cols = 5, 6
    h, w = grid.shape[0] // rows, grid.shape[1] // cols
    tiles = [grid[r * h + 4:(r + 1) * h - 4, c * w + 4:(c + 1) * w - 4] for r in range(rows) for c in range(cols)]
    assert min(t.max() for t in tiles) > 60, "a black tile"
    by_class = np.asarray(Image.open(ROOT / "results" / "mini" / "05_main_results" / "grid_by_class.png").convert("L"))
    header = by_class[:14]
    assert (header > 200).mean() > 0.8 and (header < 100).sum() > 50, "no header with the arms' names"
