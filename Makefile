# ecgbook task runner. Quick start (see README.md):
#   make book   # set-up (.venv), data, execution of every chapter (PROFILE, default tutorial), HTML
#   make test   # pytest, the smoke profile of every chapter, the book build with warnings as errors
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= tutorial
# Offline: use the PhysioNet mirror beside the checkout when there is one (see data/README.md).
ECGBOOK_MIRROR ?= $(abspath $(wildcard ../shared/mirror))
export ECGBOOK_MIRROR

PY := $(VENV)/bin/python

.PHONY: book test setup data run pytest smoke clean

book: setup
	$(PY) -m ecgbook build --profile $(PROFILE)

test: setup pytest smoke

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

data: setup
	$(PY) -m ecgbook data

run: setup
	$(PY) -m ecgbook run --profile $(PROFILE)

pytest: setup
	$(PY) -m pytest -q

smoke: setup
	$(PY) -m ecgbook build --profile smoke

clean:
	rm -rf _build
