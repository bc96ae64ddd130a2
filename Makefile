# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m areacam demo --out demo_out

bench: $(STAMP)
	$(PY) scripts/bench_cam.py
	$(PY) scripts/bench_gradients.py

lint: $(STAMP)
	$(PY) -m ruff check areacam models scripts tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache
