# wxauth: `make run` starts the local server, `make test` runs every test.
# Both create the virtual environment and install the pinned dependencies first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-js lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	exec $(PY) -m devserver

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The mini-program client's tests (node's built-in runner; they start the local server from
# .venv on DynamoDB Local). See clients/miniprogram/README.md.
test-js: $(STAMP)
	node --test clients/miniprogram/test/

test: test-js

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .cache .wxauth build *.egg-info

# -- AWS deployment (infra/, README "Deploy to AWS") ------------------------------------------
# `make package` builds build/infra/sam.yaml + deployment.zip (Chalice's template merged with
# infra/resources.yaml) and checks the zip; `make infra-lint` lints that template with cfn-lint
# and checkov from their own venv; `make deploy` deploys it with the AWS CLI.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
INFRA_OUT := build/infra

.PHONY: package infra-lint deploy infra-clean

$(INFRA_STAMP): infra/requirements-lint.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-compile \
		-r infra/requirements-lint.txt
	touch $(INFRA_STAMP)

package: $(STAMP)
	$(PY) infra/build.py $(INFRA_OUT)

infra-lint: package $(INFRA_STAMP)
	$(INFRA_VENV)/bin/python infra/expand_sam.py $(INFRA_OUT)/sam.yaml $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/cfn-lint $(INFRA_OUT)/sam.yaml $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		-f $(INFRA_OUT)/sam.yaml -f $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/shellcheck infra/*.sh

deploy: $(STAMP)
	infra/deploy.sh

infra-clean:
	rm -rf $(INFRA_VENV) $(INFRA_OUT)

test: infra-lint
clean: infra-clean

# `make bench`: bench/run.py's benchmarks as markdown (not part of `make test`);
# e.g. `make bench BENCH_ARGS="--quick --only verify,refresh"` or BENCH_ARGS="--write after".
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)
