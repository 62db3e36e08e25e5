# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv when missing and (re)install only when pyproject.toml or
# constraints.txt changed (the stamp file records the last install).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gifkit-installed
PROFILE ?= smoke
PYTEST_ARGS ?=

.PHONY: demo test test-compat test-colab gpu-check gpu-wheels venv docs nbval notebooks notebooks-refresh cli-reference clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e ".[notebooks,dev,mini,docs]"
	touch $(STAMP)

venv: $(STAMP)

# The main job: the quick mini experiment (Fashion-MNIST, 1 seed, < 10 min on 2 cores, results/mini/quick/).
# The data comes from the Debian package dataset-fashion-mnist, installed here when missing and possible;
# without it the demo says what to do and runs the smoke demo instead (results/demo/).
demo: $(STAMP)
	PY=$(PY) sh scripts/setup_fashion_mnist.sh
	HF_HUB_OFFLINE=1 $(VENV)/bin/gifkit demo

# The unit tests, then nbval on every notebook once (the nbval target below). The site is built first, and
# tests/test_site.py reads it in Debian's headless Chromium, installed here when missing and possible (as root or
# with password-less sudo; elsewhere the script says what to do and that test skips, saying why). The 15 slowest
# tests are listed at the end.
test: $(STAMP) docs
	sh scripts/setup_chromium.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow and not gpu and not network and not nbval_executed" --durations=15 \
	$(PYTEST_ARGS) tests
	$(MAKE) --no-print-directory nbval PYTEST_ARGS=

# The companion as a static site in build/site, built offline and strict (a broken link fails the build): README,
# docs/, the 14 notebooks with their committed outputs (not executed), results pages, and an API reference
# generated from the docstrings; MathJax ships with it (npm, package.json). Open build/site/index.html.
docs: $(STAMP) node_modules/.package-lock.json
	HF_HUB_OFFLINE=1 NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# nbval on the notebooks (or on NB="02 04"), each run once, top to bottom, in a fresh output folder
# (results/smoke/<name>, and a fresh smoke grid, results/smoke/work: tiny models, seconds; the kernel starts in
# notebooks/ and moves to the repository root):
# 1. strict nbval on those whose committed outputs come from the smoke profile (metadata.gifkit.committed_profile):
#    every output is compared with the committed one, after notebooks/nbval_sanitize.cfg has replaced dates,
#    machine, wall times and paths;
# 2. the ones committed from the mini profile on the smoke profile through the switch their parameters cells honour
#    (GIFKIT_PROFILE=smoke), lax: every cell must run (no output of theirs is the same on smoke and mini);
#    notebooks/conftest.py keeps what they showed in build/nbval, and
# 3. tests/test_notebooks.py -m nbval_executed checks it: the files each wrote, its tables against its CSVs.
NBVAL_EXECUTED := build/nbval
nbval: $(STAMP)
	@set -e; pick() { $(PY) -c "import sys; from gifkit.experiments.notebooks import notebooks, committed_profile; \
	print(*(f'notebooks/{p.name}' for p in notebooks(only=sys.argv[2:] or None) if committed_profile(p) == sys.argv[1]))" \
	$$1 $(NB); }; smoke="$$(pick smoke)"; mini="$$(pick mini)"; \
	for nb in $$smoke $$mini; do s=$$(basename $$nb .ipynb); rm -rf results/smoke/$$s notebooks/results/smoke/$$s; done; \
	rm -rf $(NBVAL_EXECUTED) results/smoke/work; \
	if [ -n "$$smoke" ]; then echo "nbval (strict): $$smoke"; HF_HUB_OFFLINE=1 $(PY) -m pytest -p no:cacheprovider \
	--nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg $(PYTEST_ARGS) $$smoke; fi; \
	if [ -n "$$mini" ]; then echo "nbval (lax, GIFKIT_PROFILE=smoke): $$mini"; \
	GIFKIT_PROFILE=smoke GIFKIT_NBVAL_EXECUTED=$(NBVAL_EXECUTED) HF_HUB_OFFLINE=1 $(PY) -m pytest -p no:cacheprovider \
	--nbval-lax $(PYTEST_ARGS) $$mini; \
	GIFKIT_NBVAL_EXECUTED=$(NBVAL_EXECUTED) HF_HUB_OFFLINE=1 $(PY) -m pytest -p no:cacheprovider -m nbval_executed \
	$(PYTEST_ARGS) tests/test_notebooks.py -k "$$(echo $$mini | sed 's,notebooks/,,g; s,\.ipynb,,g; s, , or ,g')"; fi

# The unit tests in a second environment at the oldest versions gifkit claims (constraints-compat.txt: exactly the
# lower bounds in pyproject.toml, every extra included), in .venv-compat (Python 3.11; a CUDA build of torch: a few
# GB the first time).
COMPAT := .venv-compat
$(COMPAT)/.gifkit-installed: pyproject.toml constraints-compat.txt
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install -q --upgrade pip
	$(COMPAT)/bin/python -m pip install -q -c constraints-compat.txt -e ".[dev,mini,notebooks,fid]"
	touch $@

test-compat: $(COMPAT)/.gifkit-installed
	HF_HUB_OFFLINE=1 $(COMPAT)/bin/python -m pytest -m "not slow and not gpu and not network" $(PYTEST_ARGS) tests

# The unit tests in a mirror of Colab's preinstalled set (constraints-colab.txt: Python 3.12, torch 2.9.0,
# numpy 2.0.2, pandas 2.2.2, transformers 4.57.2, diffusers 0.35.2, ...), what a Colab user has after the README's
# install cell, in .venv-colab. PYTHON312: a Python 3.12 interpreter.
PYTHON312 ?= python3.12
COLAB := .venv-colab
$(COLAB)/.gifkit-installed: pyproject.toml constraints-colab.txt
	test -x $(COLAB)/bin/python || $(PYTHON312) -m venv $(COLAB)
	$(COLAB)/bin/python -m pip install -q --upgrade pip
	$(COLAB)/bin/python -m pip install -q -c constraints-colab.txt -e ".[dev,mini]"
	touch $@

test-colab: $(COLAB)/.gifkit-installed
	HF_HUB_OFFLINE=1 $(COLAB)/bin/python -m pytest -m "not slow and not gpu and not network" $(PYTEST_ARGS) tests

# The paper path on one CUDA GPU with full-size random-weight checkpoints (no downloads; docs/gpu.md): the machine's
# own python3 with the wheels of `make gpu-wheels` (.whl/) installed with --target, results/gpu/<gpu-name>.json row
# by row; --budget-s N stops before N seconds. On a development machine:
# make gpu-check GPU_PYTHON=.venv/bin/python GPU_CHECK_ARGS=--smoke (tiny checkpoints on the CPU).
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=
gpu-check:
	PYTHON=$(GPU_PYTHON) sh scripts/gpu_check.sh $(GPU_CHECK_ARGS)

gpu-wheels:
	PYTHON=$(PYTHON) sh scripts/gpu_wheels.sh

# make notebooks [NB="05 06"] [PROFILE=smoke|mini|paper] [PARAMS="ratio=5 seeds=[0,1]"]: executed copies under
# results/<profile>/notebooks/, their CSV and PNG under results/<profile>/<notebook>/, the shared (resumable) study
# grid under results/<profile>/work/grid (on mini: the one `gifkit mini` writes)
NB ?=
PARAMS ?=
notebooks: $(STAMP)
	$(PY) -m gifkit.experiments.notebooks --profile $(PROFILE) $(if $(NB),--only $(NB)) $(foreach p,$(PARAMS),--param '$(p)')

# Re-execute notebooks (all, or NB=...) in place, each on the profile its committed outputs come from
# (metadata.gifkit.committed_profile: mini for 00, 01, 05-10; smoke for 02-04, 11-13), in a fresh output folder (the
# shared study grid under results/<profile>/work/grid is reused), and store the outputs in notebooks/. The mini
# notebooks take about 90 minutes on a 2-core CPU after `gifkit mini` and its studies (docs/notebooks.md).
notebooks-refresh: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m gifkit.experiments.notebooks --refresh $(if $(NB),--only $(NB))

# docs/cli.md: every command's --help, generated from the parser (tests/test_cli.py fails while it is stale)
cli-reference: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) scripts/cli_reference.py

clean-venv:
	rm -rf $(VENV)
