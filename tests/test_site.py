"""The companion site (mkdocs.yml, scripts/site_hooks.py, ``make docs``): what it holds, and how its pages read in
a real headless Chromium, offline: opened from the folder (file://), as a reader without a server opens it, with
every request that would leave the folder refused and recorded.

The browser tests read build/site as ``make docs`` left it (``make test`` builds it first). They skip, saying why,
where the site is not built, or the docs extra (playwright) or a Chromium is not installed (``sh
scripts/setup_chromium.sh`` installs Debian's). Screenshots are kept in build/screenshots/.
"""
import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
SHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -c constraints.txt -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "scripts" / "site_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flat(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += flat(value) if isinstance(value, list) else [value]
    return out


# ----------------------------------------------------------------------------- what the site holds


def test_the_nav_lists_every_docs_page_notebook_and_results_page_of_the_repository(hooks):
    nav = flat(hooks.nav())
    assert nav[0] == "index.md" and hooks.site_pages()["index.md"] == ROOT / "README.md"
    want = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.glob("docs/**/*.md"))]
    want += [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.glob("notebooks/*.ipynb"))]
    want += ["results/mini/RESULTS.md"]
    assert len([p for p in nav if p.startswith("notebooks/")]) == 14
    assert set(want) <= set(nav), set(want) - set(nav)
    assert len(nav) == len(set(nav))


def test_a_folder_index_comes_first_in_its_section(hooks, monkeypatch):
    pages = {p: ROOT / p for p in ("index.md", "docs/usage.md", "docs/index.md", "docs/cli.md", "docs/x/a.md")}
    monkeypatch.setattr(hooks, "site_pages", lambda: pages)
    assert hooks.nav()[1] == {"Guide": ["docs/index.md", "docs/cli.md", "docs/usage.md", "docs/x/a.md"]}


def test_the_api_reference_has_a_page_for_every_public_module_found_by_walking_the_package(hooks):
    names = hooks.public_modules(ROOT / "gifkit")
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
             for p in (ROOT / "gifkit").rglob("*.py") if not any(s.startswith("_") for s in p.parts[-1:])
             and "__pycache__" not in p.parts}
    assert files <= set(names) and "gifkit.core.guidance" in names and "gifkit.core" in names
    assert "gifkit.__main__" not in names
    pages = hooks.reference_pages()
    assert pages["reference/gifkit/core/guidance.md"].splitlines()[-1] == "::: gifkit.core.guidance"
    methods = pages["reference/gifkit/methods/index.md"]
    assert "::: gifkit.methods" in methods.splitlines() and "(gif_sd.md)" in methods
    index = pages["reference/index.md"]
    assert all(f"`{n}`" in index for n in names)
    assert "CLIP guidance" in index  # the first docstring line of gifkit.core.guidance


def test_a_new_module_appears_and_a_private_one_does_not(hooks, tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "_private.py", "sub/b.py", "sub/__init__.py"):
        (pkg / name).write_text('"""doc"""\n')
    (pkg / "_hidden").mkdir()
    (pkg / "_hidden" / "c.py").write_text("")
    assert hooks.public_modules(pkg) == ["pkg", "pkg.a", "pkg.sub", "pkg.sub.b"]


def test_every_package_folder_has_an_init_module():
    """mkdocstrings (griffe) reads the modules of a folder only through its __init__.py."""
    folders = [p for p in (ROOT / "gifkit").rglob("*") if p.is_dir() and "__pycache__" not in p.parts
               and any(p.glob("*.py"))]
    assert folders and [str(p.relative_to(ROOT)) for p in folders if not (p / "__init__.py").is_file()] == []


def test_repository_files_a_page_links_to_are_copied_and_other_links_are_left_to_mkdocs(hooks):
    text = ("[make](../Makefile) [c](../constraints.txt#L1) [web](https://example.org/x.png) [top](#a) "
            "[gone](../no/such/file.md) ![f](../results/mini/mini.png)\n[ref]: ../pyproject.toml\n")
    got = hooks.linked_files("docs/page.md", text, have={"results/mini/mini.png"})
    assert got == {"Makefile", "constraints.txt", "pyproject.toml"}


def test_a_notebook_page_links_to_pages_of_the_site_and_a_broken_link_is_a_warning(hooks, caplog):
    from mkdocs.structure.files import File, Files

    files = Files([File(p, str(ROOT), "/site", False) for p in ("notebooks/00_quickstart.ipynb", "docs/design.md",
                                                               "results/mini/mini.png")])
    page = type("Page", (), {"file": files.get_file_from_path("notebooks/00_quickstart.ipynb")})()
    html = ('<a href="../docs/design.md#notation">d</a> <img src="../results/mini/mini.png"> <a href="#top">t</a> '
            '<a href="https://example.org/">w</a> <a href="05_gone.ipynb">g</a> '
            '<img alt="Open In Colab" src="https://colab.example/badge.svg"> <script src=""> </script>')
    with caplog.at_level("WARNING", logger="mkdocs.hooks.site"):
        out = hooks.on_page_content(html, page, None, files)
    assert '<a href="../docs/design.html#notation">' in out and '<img src="../results/mini/mini.png">' in out
    assert '<a href="#top">' in out and '<a href="https://example.org/">' in out
    assert "badge.svg" not in out and "Open In Colab" in out and '<script src="">' not in out
    assert [r.getMessage() for r in caplog.records] == [
        "notebook notebooks/00_quickstart.ipynb links to '05_gone.ipynb', which is not in the site"]


# ----------------------------------------------------------------------------- the site in a browser

PAGES = {  # page: (what its first heading says, least number of typeset equations, least number of images)
    "notebooks/00_quickstart.html": ("Quickstart", 10, 2),
    "notebooks/02_gif_sd.html": ("GIF-SD", 30, 3),
    "docs/design.html": ("design", 30, 0),
}


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").exists():
        pytest.skip("the site is not built: `make docs` builds build/site (`make test` does first)")
    return SITE.as_uri() + "/"


@pytest.fixture(scope="module")
def browser(site):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the docs extra is not installed: pip install -c constraints.txt -e '.[docs]'")
    path = chromium()
    if path is None:
        pytest.skip("no Chromium: `sh scripts/setup_chromium.sh` installs Debian's (as root or with password-less "
                    "sudo), or set CHROMIUM=/path/to/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


TYPESET = "() => MathJax.startup.promise.then(() => true)"  # MathJax has typeset the page
PROSE = """() => {  // the article's text outside code, preformatted outputs and scripts
  const a = document.querySelector("article").cloneNode(true);
  a.querySelectorAll("pre, code, script, style, mjx-container").forEach(e => e.remove());
  return a.innerText;
}"""
IMAGES = """() => [...document.querySelectorAll("article img")].map(i => ({src: i.currentSrc.slice(0, 60),
  complete: i.complete, natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
  room: i.parentElement.getBoundingClientRect().width}))"""


def open_page(browser, url: str):
    """A page of a fresh context that refuses (and records) every request leaving the site's folder, and records
    console errors, script errors and failed loads."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    errors, remote = [], []
    context.route(re.compile(r"^(?!file://)"), lambda route: (remote.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}") if r.url not in remote else None)
    page.goto(url, wait_until="load")
    return context, page, errors, remote


@pytest.mark.parametrize("path", list(PAGES))
def test_the_page_reads_offline_with_typeset_math_loaded_images_and_no_errors(site, browser, path):
    heading, min_math, min_images = PAGES[path]
    context, page, errors, remote = open_page(browser, site + path)
    assert page.evaluate(TYPESET)
    page.wait_for_load_state("networkidle")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / (path.removesuffix(".html").replace("/", "_") + ".png"), full_page=True)

    assert heading in page.locator("article h1").first.inner_text()
    math = page.locator("article mjx-container").count()
    assert math >= min_math, f"{math} typeset equations"
    assert page.locator("mjx-merror").count() == 0, "TeX that MathJax could not read"
    raw = re.findall(r"\$[^$\n]{1,80}\$|\\\(.{1,80}?\\\)", page.evaluate(PROSE))
    assert not raw, f"untypeset math: {raw[:5]}"
    images = page.evaluate(IMAGES)
    assert len(images) >= min_images
    for img in images:
        assert img["complete"] and img["natural"] > 0, f"not loaded: {img}"
        # legible: shown at its own width, or as wide as the text column when it is wider
        assert img["shown"] >= min(img["natural"], img["room"]) - 1, img
    wide = [i for i, img in enumerate(images) if img["natural"] > img["room"] + 1]
    if wide:  # a figure wider than the column: a click shows it at its own size
        page.locator("article img").nth(wide[0]).click()
        img = page.evaluate(IMAGES)[wide[0]]
        assert abs(img["shown"] - img["natural"]) <= 1, img
    assert not remote, f"requests leaving the site: {remote}"
    assert not errors, errors
    context.close()


def test_search_finds_pages_from_the_folder(site, browser):
    context, page, errors, remote = open_page(browser, site + "index.html")
    page.locator("input.md-search__input").click()
    page.keyboard.type("informativeness")
    page.wait_for_selector(".md-search-result__item", timeout=30_000)
    links = page.locator(".md-search-result__item a").evaluate_all("links => links.map(a => a.href)")
    assert any("reference/gifkit/core/guidance.html" in h for h in links), links
    assert not remote and not errors, (remote, errors)
    context.close()
