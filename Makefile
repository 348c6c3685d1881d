# Two commands do all the set-up: `make run` and `make test`. Both (re)build .venv
# whenever pyproject.toml changes, so a fresh clone needs only python3, pip and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean sandbox-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@$(BIN)/swarmchat $(ARGS)

# The sandbox's first tier needs bubblewrap; install it where we can (root + apt-get).
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null \
	      || echo "warning: could not install bubblewrap; sandbox tests will be skipped"; \
	  else \
	    echo "note: bubblewrap is not installed (apt install bubblewrap); its tests will be skipped"; \
	  fi; }

test: $(STAMP) sandbox-deps
	$(BIN)/ruff check swarmchat tests bench
	$(BIN)/ruff format --check swarmchat tests bench
	$(BIN)/mypy
	$(BIN)/cog --check README.md
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

bench: $(STAMP) sandbox-deps
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) build *.egg-info
