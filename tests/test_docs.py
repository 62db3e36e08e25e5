"""Reader text (README.md, docs/*.md) stays true: a short README, links and headings that resolve on GitHub and on
the docs site, `gifkit.…` names that exist in the code, result tables equal to the committed CSVs, and no sentence
of change history (that belongs in commit messages)."""
import ast
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
RESULTS = ROOT / "results" / "mini"
HISTORY = re.compile(r"before this change|after this change|no longer|\bnow\b|was fixed|been lent|so far|previously"
                     r"|it replaces|\bwe (?:changed|fixed|replaced|removed|added)\b", re.IGNORECASE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NAME = re.compile(r"(?<![\w.])gifkit(?:\.[A-Za-z_]\w*)+")  # not `metadata.gifkit.profiles` (a notebook key)


def prose(text: str) -> str:
    """The text without fenced code blocks (their lines become empty, so line numbers stay)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def slugs(heading: str) -> tuple[str, str]:
    """The anchor of a heading on GitHub and on an mkdocs site (Python-Markdown's toc slugify)."""
    text = re.sub(r"[`*]", "", heading).strip()
    github = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    mkdocs = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip().lower())
    return github, mkdocs


def anchors(path: Path) -> set[str]:
    """Anchors that work both on GitHub and on the site."""
    pairs = [slugs(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *$", prose(path.read_text()), re.MULTILINE)]
    return {g for g, _ in pairs} & {m for _, m in pairs}


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` that reach no file or heading (or, from docs/, leave docs/ and the site)."""
    bad = []
    for target in LINK.findall(re.sub(r"`[^`]*`", "", prose(page.read_text()))):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.is_file():
            bad.append(f"{target} (no such file)")
        elif page.parent == DOCS and DOCS not in dest.parents:
            bad.append(f"{target} (outside docs/: the site cannot follow it)")
        elif anchor and anchor not in anchors(dest):
            bad.append(f"{target} (no heading with this anchor on GitHub and the site)")
    return bad


def _defined(body: list, name: str):
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for t in targets:
            if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(t)):
                return node
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in node.names):
            return node
        if isinstance(node, (ast.If, ast.Try)):
            found = _defined(node.body + getattr(node, "orelse", []) + [
                n for h in getattr(node, "handlers", []) for n in h.body], name)
            if found is not None:
                return found
    return None


def resolves(dotted: str) -> bool:
    """Whether ``gifkit.a.b.Name.attr`` names a module of the package and names defined in it (read, not imported)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        if i == len(parts) and base.is_dir() and any(base.glob("*.py")):  # a package, with or without __init__
            return True
        for f in (base.with_suffix(".py"), base / "__init__.py"):
            if f.is_file():
                body = ast.parse(f.read_text(encoding="utf-8")).body
                for part in parts[i:]:
                    node = _defined(body, part) if body is not None else True
                    if node is None:
                        return False
                    body = node.body if isinstance(node, ast.ClassDef) else None
                return True
    return False


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 260, f"README.md has {n} lines: move detail into a docs/ page and link it"


def test_docs_has_an_index_that_links_every_page():
    linked = {t.partition("#")[0] for t in LINK.findall((DOCS / "index.md").read_text())}
    assert {p.name for p in DOCS.glob("*.md")} - {"index.md"} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_change_history_in_reader_text(page):
    hits = [f"{i}: {line.strip()[:100]}" for i, line in enumerate(prose(page.read_text()).splitlines(), 1)
            if HISTORY.search(line)]
    assert not hits, f"{page.relative_to(ROOT)} tells history (state what is; history goes in commit messages): {hits}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_gifkit_names_exist(page):
    missing = sorted({n for n in NAME.findall(page.read_text()) if not resolves(n)})
    assert not missing, f"{page.relative_to(ROOT)} cites names the code does not define: {missing}"


def test_methods_page_covers_every_method():
    from gifkit.cli import build_parser

    expand = next(a for a in build_parser()._actions if a.dest == "command").choices["expand"]
    names = next(a for a in expand._actions if a.dest == "method").choices
    text = (DOCS / "methods.md").read_text()
    assert len(names) >= 17 and not [n for n in names if f"`{n}`" not in text], \
        "docs/methods.md misses a method of `gifkit expand --method`"


def python_imports(page: Path):
    """``(module, name)`` of every ``from gifkit... import ...`` in the page's Python code blocks."""
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL):
        for module, names in re.findall(r"^from (gifkit[\w.]*) import ([\w, ]+)", block, re.MULTILINE):
            yield from ((module, n.strip()) for n in names.split(","))


def test_python_examples_import_what_exists():
    missing = [f"{p.name}: from {m} import {n}" for p in PAGES for m, n in python_imports(p) if not resolves(f"{m}.{n}")]
    assert not missing, missing


def test_the_checks_can_fail(tmp_path, monkeypatch):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## 6. Layout and data flow\n")
    page.write_text("# A\n\n[ok](other.md#6-layout-and-data-flow) [gone](missing.md) [bad anchor](other.md#nope)\n"
                    "[out](../README.md) `[not a link](x.md)`\n```\n[in code](y.md)\n```\n")
    (tmp_path / "README.md").write_text("x")
    monkeypatch.setitem(globals(), "DOCS", tmp_path / "docs")
    assert [b.split(" ")[0] for b in broken_links(page)] == ["missing.md", "other.md#nope", "../README.md"]
    assert slugs("What S_div does (mini)") == ("what-s_div-does-mini",) * 2
    assert len(set(slugs("a - b"))) == 2  # GitHub keeps both hyphens, the site one: not linkable on both
    assert HISTORY.search("Before this change it failed") and HISTORY.search("it now works")
    assert not HISTORY.search("It is not measured yet; nowhere is it known")
    assert resolves("gifkit.config.Check") and resolves("gifkit.io.files") and resolves("gifkit.cli.expand.run_expand")
    assert not resolves("gifkit.config.NoSuchSetting") and not resolves("gifkit.nosuchmodule")
    assert resolves("gifkit.core") and NAME.findall("`metadata.gifkit.profiles` and gifkit.io.store.") == [
        "gifkit.io.store"]


# ----- result tables against the committed CSVs --------------------------------------------------------------------

def table(page: Path, header: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header line starts with ``header``: first cell -> the other cells."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*").strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def shows(text: str, value: float) -> bool:
    """Whether the number printed in ``text`` is ``value`` rounded to the digits shown."""
    number = re.search(r"[-+]?\d+(?:\.(\d+))?", text)
    places = len(number.group(1) or "")
    return abs(float(number.group(0)) - value) <= 0.5 * 10 ** -places + 1e-9


def shows_all(text: str, values) -> bool:
    found = re.findall(r"[-+]?\d+(?:\.\d+)?", text)
    return len(found) >= len(values) and all(shows(t, v) for t, v in zip(found, values))


def diff_cell(paired: pd.DataFrame, arm: str, control: str, key: str = "arm") -> tuple[list[float], bool]:
    r = paired[(paired[key] == arm) & (paired["control"] == control)].iloc[0]
    return [r.mean_diff, r.ci_low, r.ci_high], r.verdict != "no effect"


MAIN_ARMS = {"original (200 images)": "original", "RandAugment 5x": "randaugment", "unguided VAE prior 5x": "vae",
             "GIF-VAE 5x (S_inf + S_div, channel noise)": "gif-vae",
             "random channel perturbation, no guidance step": "vae-random", "ablation: S_inf only": "gif-vae-inf",
             "ablation: S_div only": "gif-vae-div", "ablation: pixel-wise noise": "gif-vae-pixel"}


def test_mini_results_table_is_the_committed_csvs():
    rows = table(DOCS / "results.md", "| arm | accuracy | minus original |")
    summary = pd.read_csv(RESULTS / "summary.csv").set_index("arm")
    paired = pd.read_csv(RESULTS / "paired.csv")
    assert set(rows) == set(MAIN_ARMS)
    text = (DOCS / "results.md").read_text()
    for label, arm in MAIN_ARMS.items():
        acc, vs_original, vs_random = rows[label]
        assert shows_all(acc, [summary.accuracy_mean[arm], summary.accuracy_std[arm]]), label
        for cell, control in ((vs_original, "original"), (vs_random, "vae-random")):
            if arm == control:
                assert cell == "(control)"
                continue
            values, effect = diff_cell(paired, arm, control)
            assert shows_all(cell, values), (label, control)
            assert (f"**{cell}**" in text) == effect, f"{label} vs {control}: bold exactly when an effect"
    # the README's summary sentence: GIF-VAE is no effect against the original data nor against the random control
    assert not diff_cell(paired, "gif-vae", "original")[1] and not diff_cell(paired, "gif-vae", "vae-random")[1]


def test_diversity_and_guidance_study_tables_are_the_committed_csvs():
    per_t = pd.read_csv(RESULTS / "06_ablations" / "diversity_per_temperature.csv").set_index("arm")
    rows = table(DOCS / "results.md", "| T | gradient signs S_div flips |")
    for label, arm in {"1 (paper)": "T=1", "0.1": "T=0.1", "0.03": "T=0.03", "0.01": "T=0.01"}.items():
        flips, ratio, changed, diversity = rows[label]
        r = per_t.loc[arm]
        assert shows(flips, 100 * r.flipped_signs) and shows(ratio, r.grad_ratio_median), label
        assert int(changed) == r.images_changed and shows(diversity, r.feature_diversity), label
    assert shows(rows["S_inf only"][3], per_t.loc["inf_only"].feature_diversity)
    assert per_t.loc["T=1"].images_changed == 0  # "S_div changes no image" (README and results.md)
    paired = pd.read_csv(RESULTS / "06_ablations" / "diversity_study" / "paired.csv")
    prose_text = " ".join((DOCS / "results.md").read_text().split())
    said = re.search(r"the classifier is (\S+) points (\[\S+ \S+\]) against S_inf only and (\S+) (\[\S+ \S+\])",
                     prose_text)
    assert shows_all(" ".join(said.groups()[:2]), diff_cell(paired, "gif-vae-T0.03", "gif-vae-inf", "method")[0])
    assert shows_all(" ".join(said.groups()[2:]), diff_cell(paired, "gif-vae-T0.03", "vae-random", "method")[0])

    study = pd.read_csv(RESULTS / "06_ablations" / "summary.csv")
    study = study[study.study == "guidance"].set_index("method")
    paired = pd.read_csv(RESULTS / "06_ablations" / "guidance_study" / "paired.csv")
    diag = pd.read_csv(RESULTS / "diagnostics.csv").set_index("arm")
    rows = table(DOCS / "results.md", "| arm | accuracy | minus random perturbation |")
    arms = {"random perturbation, eps 0.8 (control)": ("vae-random", None),
            "GIF-VAE: 1 signed step (official)": ("gif-vae", "vae-random"),
            "3 signed steps": ("gif-vae-sign3", "vae-random"), "5 Adam steps": ("gif-vae-adam5", "vae-random"),
            "random perturbation, eps 2": ("vae-random-eps2", "vae-random"),
            "GIF-VAE, eps 2": ("gif-vae-eps2", "vae-random-eps2")}
    assert set(rows) == set(arms)
    for label, (arm, control) in arms.items():
        cells = rows[label]
        assert shows_all(cells[0], [study["mean"][arm], study["std"][arm]]), label
        if control:
            assert shows_all(cells[1], diff_cell(paired, arm, control, key="method")[0]), label
        if arm in diag.index:
            assert shows_all(" ".join(cells[2:5]), list(diag.loc[arm, ["entropy", "label_agreement",
                                                                       "feature_diversity"]])), label


def test_guide_study_words_are_the_committed_csvs():
    """docs/results.md shows the guide study's table and every sentence guide_findings computes from the committed
    CSVs; the README's answer repeats the three that answer the question (strongest guide, order by accuracy, the
    smallest effect the seeds could detect)."""
    from gifkit.experiments.guide_study import GUIDE_NAMES, guide_findings, guide_table

    folder = RESULTS / "06_ablations" / "guide_study"
    summary, paired = pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "paired.csv")
    results_text = " ".join((DOCS / "results.md").read_text().split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert guide_table(summary) in (DOCS / "results.md").read_text()
    findings = guide_findings(summary, paired)
    assert len(findings) >= 3
    for sentence in findings:
        assert sentence in results_text, sentence
    assert all(sentence in readme for sentence in findings[-4:])  # gain over original, strongest, order, detectable
    # each sentence's verdict follows its interval (the words are checked, not only copied)
    p = paired[paired["control"] == "vae-random"].set_index("method")
    for sentence in [f for f in findings if "against the same random perturbation over" in f]:
        arm = next(a for a in p.index if f"'{GUIDE_NAMES[a]}'" in sentence)
        r = p.loc[arm]
        if r.n < 2:
            assert sentence.endswith("on one seed: no interval.")
            continue
        assert f"GIF-VAE is {r.mean_diff:+.2f} points [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" in sentence
        holds = r.ci_low <= 0 <= r.ci_high
        assert ("no detectable effect" in sentence) == holds and ("excludes 0" in sentence) == (not holds)
        if holds:
            assert f"an effect of {r.detectable:.2f} points 80 % of the time" in sentence
    o = paired[paired["control"] == "original"].set_index("method")
    gain = next(f for f in findings if f.startswith("Against the original data"))
    assert f"{o.loc['vae-random', 'mean_diff']:+.2f} points [{o.loc['vae-random', 'ci_low']:+.2f}" in gain
    assert ("without the guided step" in gain) == (o.loc["vae-random", "ci_low"] > 0)
    # the README's summary of it: GIF-VAE's gain over the original detectable at 10 seeds, none over the control
    said = "With 10 seeds (the guide study below, on the VAE prior gifkit ships) the expansion's gain over the " \
           "original data is detectable, and still the guided step adds nothing to it."
    g = paired[paired["method"] == "gif-vae"].set_index("control")
    holds = g.loc["original", "ci_low"] > 0 and g.loc["vae-random", "ci_low"] <= 0 <= g.loc["vae-random", "ci_high"]
    assert (said in readme) == bool(holds and g.loc["original", "n"] == 10)
    table = pd.read_csv(folder / "paper_vs_run.csv")
    assert "run_minus_paper" not in table.columns  # gains side by side, never a difference across datasets
