# Set-up and everyday commands. `make test` and `make restore` create the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-all parity restore serve evaluate clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,faces,serve]'
	touch $(STAMP)

# The default test suite (what CI runs), in TEST_WORKERS processes (pytest-xdist), each test file
# whole in one of them so that its module fixtures are built once. Most of the suite's time is
# single-threaded XLA compilation, so on a 2-core machine two processes took 13:51 against 20:26
# for one (790 tests, 2026-12-06); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: setup
	$(PYTEST)

# Also the heavy checks marked slow.
test-all: setup
	$(PYTEST) -m "slow or not slow"

# Restore the bundled sample photos as the official README does: the scratched ones in scratch
# mode, the others in quality mode (the official default command). Faces are enhanced when the
# model has a face network.
CHECKPOINT_DIR ?= weights/default
restore: setup
	$(PY) infer.py --input_folder samples/old_w_scratch --output_folder outputs/samples/old_w_scratch \
		--with_scratch --checkpoint_dir $(CHECKPOINT_DIR)
	$(PY) infer.py --input_folder samples/old --output_folder outputs/samples/old \
		--checkpoint_dir $(CHECKPOINT_DIR)

# The local web page (http://127.0.0.1:8000/) with the same model.
serve: setup
	$(PY) -m oldphoto_jax.serve --checkpoint_dir $(CHECKPOINT_DIR)

# PSNR / SSIM on held-out clean photos degraded with a fixed seed, next to a classical baseline.
evaluate: setup
	$(PY) -m oldphoto_jax.evaluate --checkpoint_dir $(CHECKPOINT_DIR) --output_dir outputs/evaluation

# Every parity case with its measured error and tolerance.
parity: setup
	$(PY) -m oldphoto_jax.parity

clean:
	rm -rf $(VENV) .pytest_cache
