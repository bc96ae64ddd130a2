# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean report-check

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

# Open demo_out/report.html in headless Chromium (Debian's package, installed here if missing): every
# image must load, no console errors; writes demo_out/report.png. Runs the quick demo first if needed.
report-check: $(STAMP)
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium chromium-driver)
	test -f demo_out/report.html || $(PY) -m areacam demo --out demo_out --quick
	$(PY) scripts/check_report.py demo_out/report.html --screenshot demo_out/report.png

bench: $(STAMP)
	$(PY) scripts/bench_cam.py
	$(PY) scripts/bench_gradients.py

lint: $(STAMP)
	$(PY) -m ruff check areacam models scripts tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache
