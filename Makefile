# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-portable demo bench lint format clean report-check browser docs

$(PY):
	$(PYTHON) -m venv $(VENV)

# Every install step lives here: the library with all extras and the dev tools, torch pinned by constraints.txt.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium for the browser test of report.html (best effort: without root or apt the test skips).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: chromium could not be installed; tests/test_report_browser.py will be skipped"

test: $(STAMP) browser lint docs
	$(PY) -m pytest -q

# The numerics-heavy files again on torch's portable kernels and one thread: a tolerance that only this
# CPU's kernels meet fails here (tests/README.md). .ci/run runs it after `make test`.
NUMERICS := tests/test_cam_reference.py tests/test_gradients.py tests/test_methods.py tests/test_lime.py \
	tests/test_field.py tests/test_metrics.py tests/test_metrics_reference.py tests/test_volumes.py \
	tests/test_architectures.py tests/test_targets.py tests/test_models.py tests/test_create_graph.py tests/test_windows.py \
	tests/test_losses.py
test-portable: $(STAMP)
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 $(PY) -m pytest -q $(NUMERICS)

# The static checks, run by `make test` and by the pre-commit hook (.pre-commit-config.yaml): ruff's lint
# and format check, mypy over areacam/ and models/ (scripts/typecheck.py), and the folder-level layer
# contract (pyproject.toml [tool.importlinter]).
LINTED := areacam models scripts tests
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(PY) scripts/typecheck.py
	$(VENV)/bin/lint-imports

# Apply ruff's fixes and formatting.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

# The API reference site, built from the docstrings into site/; any warning fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

demo: $(STAMP)
	$(PY) -m areacam demo --out demo_out

# Open demo_out/report.html in headless Chromium (Debian's package, installed here if missing): every
# image must load, no console errors; writes demo_out/report.png. Runs the quick demo first if needed.
report-check: $(STAMP) browser
	test -f demo_out/report.html || $(PY) -m areacam demo --out demo_out --quick
	$(PY) scripts/check_report.py demo_out/report.html --screenshot demo_out/report.png

bench: $(STAMP)
	$(PY) scripts/bench_cam.py
	$(PY) scripts/bench_gradients.py
	$(PY) scripts/bench_methods.py --threads 2
	$(PY) scripts/bench_field.py --threads 2
	$(PY) scripts/bench_lime.py --threads 2 --append
	$(PY) scripts/bench_filters.py --threads 2 --append
	$(PY) scripts/bench_metrics.py
	$(PY) scripts/memory_volume.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache site
