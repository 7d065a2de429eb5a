# ecgbook task runner. Quick start (see README.md):
#   make book   # set-up (.venv), data, execution of every chapter (PROFILE, default tutorial), HTML
#   make test   # pytest, the smoke profile of every chapter, the book build with warnings as errors
#   make lab    # JupyterLab on chapters/: double-click opens a chapter as a notebook
#   PROFILE=classroom: every chapter in about ten minutes on a 2-core CPU (make book PROFILE=classroom)
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= tutorial
# JOBS=N: chapters executed at once (each in its own process; logs in _build/stage/<profile>/logs/)
JOBS    ?= 1
# EDITION=student: the book (make book) and the lab notebooks (make lab) without the exercises' solutions
EDITION ?= teacher
# Offline: use the PhysioNet mirror beside the checkout when there is one (see data/README.md).
ECGBOOK_MIRROR ?= $(abspath $(wildcard ../shared/mirror))
export ECGBOOK_MIRROR

PY := $(VENV)/bin/python

.PHONY: book test setup data run pytest smoke lab clean

book: setup
	$(PY) -m ecgbook build --profile $(PROFILE) --jobs $(JOBS) --edition $(EDITION)

test: setup pytest smoke

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml .jupyter/labconfig/default_setting_overrides.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	mkdir -p $(VENV)/etc/jupyter/labconfig
	cp .jupyter/labconfig/default_setting_overrides.json $(VENV)/etc/jupyter/labconfig/
	touch $@

data: setup
	$(PY) -m ecgbook data

run: setup
	$(PY) -m ecgbook run --profile $(PROFILE) --jobs $(JOBS)

pytest: setup
	$(PY) -m pytest -q

lab: setup
ifeq ($(EDITION),student)
	$(PY) -c "from ecgbook import edition; print(edition.student_chapters())"
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(VENV)/bin/jupyter lab _build/student/chapters/
else
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(VENV)/bin/jupyter lab chapters/
endif

smoke: setup
	$(PY) -m ecgbook build --profile smoke
	$(PY) -m ecgbook build --profile smoke --no-run --edition student

clean:
	rm -rf _build
