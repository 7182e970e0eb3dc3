# Two commands run the course (README, Quick start): `make course` and `make test`.
# Each bootstraps .venv (Python 3.11) from requirements.txt on a fresh clone.
# Repo tooling (runner, student copy, site) lives in tools/, outside the learner-facing package.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
SOLUTIONS := $(sort $(wildcard notebooks/solutions/*.ipynb))
PROJECT_SOLUTION ?= notebooks/solutions/06_project_cam_iou.ipynb
PROJECT_STUDENT ?= notebooks/06_project_cam_iou.ipynb
SITE_STAMP := $(VENV)/.site-installed
# pip's output is captured (its warnings about the index configuration and setuptools notices are for
# developers): tools/progress.py prints a heartbeat with pip's latest step every 20 s, and all of pip's
# output only if it fails. It needs only the standard library: .venv may not exist yet.
INSTALL := $(PY) tools/progress.py installing -- $(BIN)/python -m pip --disable-pip-version-check install --progress-bar off
export PIP_ROOT_USER_ACTION := ignore
export PIP_NO_WARN_SCRIPT_LOCATION := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: course test unit nbval lint lab notebooks exercises student-copy grade site site-deps bench clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing the course's packages into $(VENV) (first run only; a few minutes)"
	@$(INSTALL) --upgrade pip "setuptools>=68" wheel
	@$(INSTALL) -r requirements.txt
	@$(INSTALL) --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# the static site and its browser test: Sphinx + MyST-NB + book theme, Selenium (see requirements-site.txt)
$(SITE_STAMP): $(STAMP) requirements-site.txt
	@echo "installing the site's packages into $(VENV)"
	@$(INSTALL) -r requirements-site.txt
	@touch $(SITE_STAMP)

## course: execute every notebook in order on the embedded defaults; HTML under build/course/
## course QUICK=1: a 3-minute taste (tiny data, few steps, two notebooks at once) under build/quick/; not the course's results
course: $(STAMP)
	@$(BIN)/python -m tools.course $(if $(QUICK),--quick --jobs 2 --out build/quick --html build/quick,--html build/course) $(NOTEBOOKS)

## notebooks: execute the notebooks and the project solution in place (what gets committed)
notebooks: $(STAMP)
	$(BIN)/python -m tools.course --inplace $(NOTEBOOKS) $(SOLUTIONS)

## exercises: regenerate the student copy of the project from its solution, and execute it
exercises: $(STAMP)
	$(BIN)/python -m tools.student_copy $(PROJECT_SOLUTION) $(PROJECT_STUDENT)
	$(BIN)/python -m tools.course --inplace $(PROJECT_STUDENT)

## student-copy: fail when the committed student copy is stale (part of `make test`)
student-copy:
	@$(BIN)/python -m tools.student_copy --check $(PROJECT_SOLUTION) $(PROJECT_STUDENT)

## grade SUBMISSIONS=DIR [OUT=build/grades] [JOBS=1]: grade returned project notebooks (grades.csv, feedback/, summary.png)
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder-of-notebooks [OUT=build/grades] [JOBS=2]"; exit 2; }
	@$(BIN)/python -m helpers grade "$(SUBMISSIONS)" --out "$(or $(OUT),build/grades)" --jobs $(or $(JOBS),1)

## site: static website from the committed, executed notebooks (not re-executed) in build/site/
site: $(SITE_STAMP)
	$(BIN)/python -m tools.site --out build/site

site-deps: $(SITE_STAMP)

## test: ruff, the student copy, the unit tests (site build + browser test included), nbval over the notebooks
## (tools/pytest_progress.py, via conftest.py: a line per notebook and per slow cell, a heartbeat every 20 s)
test: lint student-copy site-deps unit nbval

lint: $(STAMP)
	$(BIN)/ruff check conftest.py helpers tools tests $(wildcard benchmarks)
	$(BIN)/ruff format --check conftest.py helpers tools tests $(wildcard benchmarks)

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	@if [ -n "$(NOTEBOOKS)" ]; then \
	  $(BIN)/python -m pytest -q -p no:randomly --nbval $(NOTEBOOKS) $(SOLUTIONS) \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1800; \
	else echo "no notebooks yet"; fi

## lab: JupyterLab on notebooks/
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

## bench: times and ratios of every hot path (markdown table; JSON in build/benchmarks.json)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf build
