# Every target creates .venv and installs from nothing when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FACETRACE_FACES ?= $(abspath ../shared/faces)
export FACETRACE_FACES

.PHONY: install run test test-all lint bench clean browser calibration-default

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[dev,milvus,ray]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/facetrace serve

# Debian's Chromium for the browser tests (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium) \
		|| echo "warning: could not install chromium; browser tests will skip" >&2

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: $(STAMP) lint browser
	$(BIN)/pytest

test-all: $(STAMP) lint browser
	$(BIN)/pytest -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# Regenerate the default score -> false-match-rate table shipped with the package,
# from every photo of the LFW half in $(FACETRACE_FACES) (grouping and duplicates use it).
# No AS-norm cohort ships: it would be other people's face vectors; an operator makes one
# from their own labelled people with 'facetrace calibrate --cohort-out' (README, "Scores").
calibration-default: $(STAMP)
	$(BIN)/facetrace --data .bench/calibration-data calibrate \
	  --images $(FACETRACE_FACES)/lfw/images \
	  --output "src/facetrace/data/calibration-dlib-resnet-v1+flip.json"
