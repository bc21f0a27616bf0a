# One-command set-up: every target below creates .venv (once) with the project and its
# dependencies from pyproject.toml, and a Jupyter kernel named `python3` inside it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ONLY   ?=
ONLY_ARG := $(if $(ONLY),--only $(ONLY),)
PROFILE ?= default

.PHONY: setup test test-fast report smoke full lab bench data html leaderboard clean-cache

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dfd)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)                       ## create .venv with everything

test: $(STAMP)                        ## the whole suite (CI runs exactly this)
	$(PY) -m pytest

test-fast: $(STAMP)                   ## unit tests only, no notebook runs
	$(PY) -m pytest -m "not slow"

data: $(STAMP)                        ## say where CIFAKE is found (or how to provide it)
	$(PY) -m dfd_utils data

report: data                          ## run every notebook under the default profile → results/default/
	$(PY) -m dfd_utils run --profile default $(ONLY_ARG)

smoke: data                           ## seconds per notebook
	$(PY) -m dfd_utils run --profile smoke $(ONLY_ARG)

full: data                            ## everything on all data, longer training → results/full/
	$(PY) -m dfd_utils run --profile full $(ONLY_ARG)

html: $(STAMP)                        ## executed reports of PROFILE as HTML with an index → build/html/PROFILE/
	$(PY) -m dfd_utils html --profile $(PROFILE)

leaderboard: $(STAMP)                 ## regenerate the README's results table from the records
	$(PY) -m dfd_utils leaderboard --profile default --write-readme

lab: $(STAMP)                         ## open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)                       ## speed figures: data loading, training, dfd score (each prints its CPU)
	$(PY) -m dfd_utils bench data
	$(PY) -m dfd_utils bench training
	$(PY) -m dfd_utils bench score

clean-cache:                          ## drop decoded-array caches
	rm -rf data/cache
