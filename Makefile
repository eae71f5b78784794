# Two entry points for a fresh clone: `make demo` and `make test` (`make docs`: the API reference).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test install docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/symaffect demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# API reference and gallery (Sphinx, offline): HTML in docs/_build/html; a warning fails
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -E -q -b html docs/api docs/_build/html
	@echo "docs: docs/_build/html/index.html"

$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[docs]'
	touch $(DOCS_STAMP)

clean:
	rm -rf $(VENV)
