"""mkdocs hooks of the companion site (mkdocs.yml, ``make docs``).

The site lays its pages out as the repository does, so a link that works on the repository works on the site
and the strict build checks it: ``README.md`` is the home page, then ``docs/**``, ``notebooks/*.ipynb`` (rendered
by mkdocs-jupyter from their committed outputs) and ``results/**/*.md``. A repository file such a page links to
(a figure, a CSV, the Makefile) is copied as it is. Built here, at every build:

* the API reference: one page per public module of gifkit, found by walking the package's folders, rendered by
  mkdocstrings from the docstrings (``reference/``);
* the navigation: Home, Guide (docs/), Notebooks, Results, API reference;
* MathJax 3 (the renderer JupyterLab uses), copied from the npm package ``mathjax`` (package.json, ``npm ci``)
  into ``assets/mathjax``, and the shim that runs Material's search from file://: no CDN, the site reads offline
  from its folder, with or without a server; with the site's small stylesheet, script and MathJax settings.

Notebook pages are checked as Markdown pages are: a relative link must name a file of the site (a link to
another notebook or page is pointed at its page), and a remote image is shown as its link, since an offline
reader cannot load it.
"""
from __future__ import annotations

import ast
import functools
import logging
import posixpath
import re
import subprocess
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gifkit"
log = logging.getLogger("mkdocs.hooks.site")  # under "mkdocs": strict mode counts its warnings

MATHJAX_CONFIG = """\
// MathJax 3, shipped with the site (assets/mathjax). In a page's text (class md-typeset) math is typeset where
// the page holds it and nowhere else: the spans pymdownx.arithmatex writes on Markdown pages, and the Markdown
// cells and LaTeX outputs of notebooks ($...$, $$...$$ as in Jupyter); code and its outputs are left alone.
// Headings in the navigation are typeset too.
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  options: {ignoreHtmlClass: "md-typeset", processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex"},
};
"""
SITE_CSS = """\
/* Notebook figures fit the text column; a click shows one at its own size (scrolling sideways), another click
   fits it again (assets/site.js). */
.md-grid { max-width: 90rem; }
.jupyter-wrapper .jp-OutputArea-output { overflow-x: auto; }
.jupyter-wrapper .jp-OutputArea-output img { max-width: 100%; height: auto; cursor: zoom-in; }
.jupyter-wrapper .jp-OutputArea-output img.full-size { max-width: none; cursor: zoom-out; }
"""
SITE_JS = """\
document.addEventListener("click", event => {
  const img = event.target.closest(".jp-OutputArea-output img");
  if (img) img.classList.toggle("full-size");
});
"""


@functools.cache
def repo_files() -> frozenset[str]:
    """The repository's files (tracked, and new ones git does not ignore), as POSIX paths from the root."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
        return frozenset(p for p in out.split("\0") if p and (ROOT / p).is_file())
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        return frozenset(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file())


def site_pages() -> dict[str, Path]:
    """Site path -> repository file of every page the site shows from the repository."""
    files = repo_files()
    pages = {"index.md": ROOT / "README.md"}
    for prefix, suffix in (("docs/", ""), ("notebooks/", ".ipynb"), ("results/", ".md")):
        for p in sorted(files):
            if p.startswith(prefix) and p.endswith(suffix) and (prefix != "notebooks/" or p.count("/") == 1):
                pages[p] = ROOT / p
    return pages


def public_modules(package_dir: Path) -> list[str]:
    """Dotted names of the public modules and packages under ``package_dir`` (a folder of Python files; none of
    its parts starting with ``_`` but ``__init__``), packages before their modules."""
    names = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        names.append(".".join(parts))
    return sorted(set(names) | {".".join(p for p in n.split(".")[:i]) for n in names
                                for i in range(1, n.count(".") + 1)})


def module_path(name: str) -> str:
    """The site path of a module's reference page: packages are ``index.md`` of their folder."""
    parts = name.split(".")
    is_package = (ROOT.joinpath(*parts) / "__init__.py").exists() or ROOT.joinpath(*parts).is_dir()
    return "reference/" + "/".join(parts) + ("/index.md" if is_package else ".md")


def summary(name: str) -> str:
    """The first line of a module's docstring (read without importing it); a package without ``__init__.py``
    is a folder of modules."""
    path = ROOT.joinpath(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.exists():
        return "(a folder of modules)"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def reference_pages(package: str = PACKAGE) -> dict[str, str]:
    """Site path -> Markdown of the API reference: an index of every public module and one page each."""
    names = public_modules(ROOT / package)

    def table(members: list[str], page: str) -> str:
        rows = [f"| [`{n}`]({posixpath.relpath(module_path(n), posixpath.dirname(page))}) | "
                f"{summary(n).replace('|', '&#124;')} |" for n in members]
        return "| module | what it holds |\n|---|---|\n" + "\n".join(rows) + "\n"

    pages = {}
    for n in names:
        page = module_path(n)
        pages[page] = f"# `{n}`\n\n::: {n}\n"
        inside = [m for m in names if m.startswith(n + ".") and "." not in m[len(n) + 1:]]
        if inside:  # a package: its modules follow what it defines itself
            pages[page] += "\n## Modules\n\n" + table(inside, page)
    pages["reference/index.md"] = ("# API reference\n\nEvery public module of gifkit, generated from its "
                                   "docstrings.\n\n" + table(names, "reference/index.md"))
    return pages


def nav() -> list:
    """Home, Guide, Notebooks, Results, API reference: each section lists what the repository holds now. Results
    pages are named by their folder (several share a heading); the reference nests as the package does."""
    pages = site_pages()

    def section(prefix: str, suffix: str) -> list[str]:  # a folder's index.md first, then by name
        found = [p for p in pages if p.startswith(prefix) and p.endswith(suffix)]
        return sorted(found, key=lambda p: (posixpath.dirname(p), posixpath.basename(p) != "index.md", p))

    def package(name: str, names: list[str]) -> list:
        inside = [n for n in names if n.startswith(name + ".") and "." not in n[len(name) + 1:]]
        subs = [n for n in inside if module_path(n).endswith("/index.md")]
        return [module_path(name), *(module_path(n) for n in inside if n not in subs),
                *({n: package(n, names)} for n in subs)]

    sections = {"Guide": section("docs/", ".md"), "Notebooks": section("notebooks/", ""),
                "Results": [{posixpath.dirname(p): p} for p in section("results/", ".md")],
                "API reference": ["reference/index.md", {PACKAGE: package(PACKAGE, public_modules(ROOT / PACKAGE))}]}
    return [{"Home": "index.md"}, *({k: v} for k, v in sections.items() if v)]


def vendored_files(modules: Path = ROOT / "node_modules") -> dict[str, Path]:
    """Site path -> file, of what the site ships from npm (package.json, ``npm ci``): MathJax's browser build
    (the ``tex-chtml`` component and what it loads on demand: TeX extensions, fonts, menu, accessibility; not the
    other combined components), and the Web Worker shim Material's search needs to run from file://."""
    es5 = modules / "mathjax" / "es5"
    shim = modules / "iframe-worker" / "shim" / "index.js"
    if not (es5 / "tex-chtml.js").exists() or not shim.exists():
        raise RuntimeError(f"the site's npm packages are not installed in {modules}: run `npm ci` (make docs does)")
    out = {"assets/iframe-worker/shim.js": shim}
    for p in sorted(es5.rglob("*")):
        if p.is_file() and (p.parent != es5 or p.name == "tex-chtml.js"):
            out["assets/mathjax/" + p.relative_to(es5).as_posix()] = p
    return out


LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$|(?:src|href)=[\"']([^\"']+)", re.M)


def linked_files(site_path: str, text: str, have: set[str]) -> set[str]:
    """Repository files a page links to that the site does not hold yet (site path = repository path)."""
    out = set()
    for match in LINK.finditer(text):
        target = next(g for g in match.groups() if g).split("#")[0].split("?")[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:|^/", target, re.I):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(site_path), target))
        if path not in have and path in repo_files():
            out.add(path)
    return out


# ----------------------------------------------------------------------------- mkdocs events


@event_priority(100)
def on_config(config):
    config.nav = nav()
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the .ipynb files into pages
def on_files(files: Files, config) -> Files:
    docs_dir = Path(config.docs_dir).resolve()
    found = [f for f in files if f.src_dir and Path(f.src_dir).resolve() == docs_dir]  # laid out again below
    out = Files([f for f in files if f not in found])  # the theme's files

    def mirror(site_path: str) -> File:  # the repository file at the same path (mkdocs-jupyter needs a src_dir)
        return File(site_path, str(ROOT), config.site_dir, config.use_directory_urls)

    for site_path, source in site_pages().items():
        out.append(mirror(site_path) if source == ROOT / site_path
                   else File.generated(config, site_path, abs_src_path=str(source)))
    for site_path, text in reference_pages().items():
        out.append(File.generated(config, site_path, content=text))
    have = {f.src_uri for f in out}
    for site_path, source in site_pages().items():
        if source.suffix == ".md":
            for path in linked_files(site_path, source.read_text(encoding="utf-8"), have):
                out.append(mirror(path))
                have.add(path)
    for site_path, path in vendored_files().items():
        out.append(File.generated(config, site_path, abs_src_path=str(path)))
    out.append(File.generated(config, "assets/mathjax-config.js", content=MATHJAX_CONFIG))
    out.append(File.generated(config, "assets/site.css", content=SITE_CSS))
    out.append(File.generated(config, "assets/site.js", content=SITE_JS))
    for f in found:
        if f.src_uri.endswith(".md") and "docs/" + f.src_uri not in have:
            log.warning("%s is not a repository file the site knows (git add it)", f.abs_src_path)
    return out


# nbconvert's MathJax 2 loader (given no URL) and settings: the site's MathJax 3 is configured once for all pages
NBCONVERT_MATHJAX = re.compile(r'<script src="">\s*</script>|<script type="text/x-mathjax-config">.*?</script>', re.S)
REMOTE_IMG = re.compile(r'<img\b[^>]*\bsrc="(https?://[^"]+)"[^>]*>')
HREF = re.compile(r'\b(href|src)="([^"#:?]+)((?:[?#][^"]*)?)"')


def on_page_content(html: str, page, config, files: Files) -> str:
    html = REMOTE_IMG.sub(lambda m: _alt(m.group(0)) or m.group(1), html)
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    html = NBCONVERT_MATHJAX.sub("", html)

    def link(m: re.Match) -> str:
        attr, target, rest = m.groups()
        if target.startswith("/"):
            return m.group(0)
        src = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), target))
        found = files.get_file_from_path(src)
        if found is None:
            log.warning("notebook %s links to '%s', which is not in the site", page.file.src_uri, target)
            return m.group(0)
        return f'{attr}="{found.url_relative_to(page.file)}{rest}"'

    return HREF.sub(link, html)


def _alt(tag: str) -> str:
    m = re.search(r'\balt="([^"]*)"', tag)
    return m.group(1) if m else ""
