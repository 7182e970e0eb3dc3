# Two commands run the course (README, Quick start): `make course` and `make test`.
# Each bootstraps .venv (Python 3.11) from requirements.txt on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
SOLUTIONS := $(sort $(wildcard notebooks/solutions/*.ipynb))
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: course test unit nbval lint lab notebooks exercises bench clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## course: execute every notebook in order on the embedded defaults; HTML under build/
course: $(STAMP)
	$(BIN)/python -m helpers.course --html build $(NOTEBOOKS)

## notebooks: execute the notebooks and the project solution in place (what gets committed)
notebooks: $(STAMP)
	$(BIN)/python -m helpers.course --inplace $(NOTEBOOKS) $(SOLUTIONS)

## exercises: regenerate the student copy of the project from its solution, and execute it
exercises: $(STAMP)
	$(BIN)/python -m helpers.student_copy notebooks/solutions/06_project_cam_iou.ipynb notebooks/06_project_cam_iou.ipynb
	$(BIN)/python -m helpers.course --inplace notebooks/06_project_cam_iou.ipynb

## test: ruff, the unit tests, and nbval over the notebooks
test: lint unit nbval

lint: $(STAMP)
	$(BIN)/ruff check helpers tests $(wildcard benchmarks)
	$(BIN)/ruff format --check helpers tests $(wildcard benchmarks)

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	@if [ -n "$(NOTEBOOKS)" ]; then \
	  $(BIN)/python -m pytest -q -p no:randomly --nbval $(NOTEBOOKS) $(SOLUTIONS) \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600; \
	else echo "no notebooks yet"; fi

## lab: JupyterLab on notebooks/
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

## bench: times and ratios of every hot path (markdown table; JSON in build/benchmarks.json)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf build
