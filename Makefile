# The three commands the README promises: `make run`, `make test`, `make bench`.
# Everything installs into .venv (created if missing) from the hashed lock file, and re-installs
# when the lock or pyproject.toml changes. `make lock` regenerates the locks (README, Development).

PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The locks are resolved for the machines the project runs on (developers', CI's, the image).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
UV_COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --no-strip-extras $(LOCK_TARGET) \
	--custom-compile-command "make lock"
# [build-system].requires, so the package itself builds from locked, hashed artifacts too.
BUILD_REQUIRES := $(BIN)/python -c 'import tomllib; \
	print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'

.PHONY: run test bench lint install lock clean dashboard

# Only hashed, pinned artifacts from the lock (--require-hashes, --no-deps: nothing unlisted is
# resolved), then the project itself without build isolation (setuptools comes from the lock).
# The stamp records the lock's digest; tests/test_lock.py compares the environment with it.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@sha256sum $(DEV_LOCK) > $(STAMP)

# The Node clients the tests run (tests/node: @helicone/helpers, the OpenAI SDK), installed
# from their lock (`npm ci`), again whenever the lock changes.
NODE_STAMP := tests/node/node_modules/.installed
$(NODE_STAMP): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# Re-resolve both locks from pyproject.toml, keeping the current pins where they still satisfy
# it (`make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed versions). The dev
# lock is constrained to the runtime lock's versions so both agree on every shared package.
LOCK_FLAGS ?=
lock: $(STAMP)
	$(BUILD_REQUIRES) | $(UV_COMPILE) $(LOCK_FLAGS) pyproject.toml - -o $(LOCK)
	$(BUILD_REQUIRES) | $(UV_COMPILE) $(LOCK_FLAGS) pyproject.toml - --extra dev --extra embedded -c $(LOCK) -o $(DEV_LOCK)

run: $(STAMP)
	$(BIN)/gateway serve

# The suite runs on two worker processes (pytest-xdist), each taking whole test files
# (--dist loadfile: a file's module-scoped servers and stores are set up once, in one worker).
# Serially: `make test PYTEST_ARGS=-n0`, or plain `.venv/bin/python -m pytest` (no workers).
PYTEST_ARGS ?= -n 2 --dist loadfile
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.cache
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.honeyhive
	$(BIN)/python -m bench.prompts

lint: $(STAMP)
	$(BIN)/ruff check gateway providers logging_pipeline cache ratelimit tests bench
	$(BIN)/mypy

# The web dashboard (docs/dashboard.md): its npm packages from the lock (`npm ci`), type-checked
# and built by Vite into gateway/dashboard/static/ (committed; shipped in the wheel and the
# image), then the digest of the sources it was built from (tests/test_dashboard_build.py).
dashboard:
	cd dashboard && npm ci --no-audit --no-fund && npm run build
	python3 dashboard/source_digest.py > gateway/dashboard/static/SOURCE_DIGEST

clean:
	rm -rf $(VENV) build *.egg-info dashboard/node_modules
