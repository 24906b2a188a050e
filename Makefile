# Two commands on a fresh machine: `make demo` and `make test`. Each creates what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv bytecode demo test ui lint chromium postgres clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU wheel on disk; an unpinned torch would pull GBs of CUDA packages
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

venv: $(STAMP)

# The project's own modules compiled once: every run worker, code server and CLI process then reads .pyc
# files even where PYTHONDONTWRITEBYTECODE is set (pip already compiled the installed packages).
bytecode: venv
	@$(PY) -m compileall -q -j 0 flywheel assets jobs schedules sensors launcher definitions.py >/dev/null

chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

postgres:
	@bash scripts/ensure-postgres

# the demo writes its project into $(FLYWHEEL_HOME)/demo-project; `make ui` opens the same project
DEMO_PROJECT := $(FLYWHEEL_HOME)/demo-project
export FLYWHEEL_PROJECT ?= $(DEMO_PROJECT)

demo: venv bytecode
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/flywheel demo

test: venv bytecode chromium postgres
	$(PY) -m pytest -q

# `dg dev` (dagster-dg-cli) loads the code location of pyproject's [tool.dg.project], as workspace.yaml does.
# The local instance: no telemetry, run logs in this terminal at INFO (every event stays in the UI), and the
# warm-fork run launcher.
ui: venv bytecode
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml
	@grep -q '^python_logs:' $(DAGSTER_HOME)/dagster.yaml || printf 'python_logs:\n  python_log_level: INFO\n' >> $(DAGSTER_HOME)/dagster.yaml
	@# runs start as forks of a warm forkserver instead of a fresh Python each (launcher/warm_fork.py)
	@grep -q '^run_launcher:' $(DAGSTER_HOME)/dagster.yaml || cat launcher/instance.yaml >> $(DAGSTER_HOME)/dagster.yaml
	@test -d $(FLYWHEEL_PROJECT) || echo "note: $(FLYWHEEL_PROJECT) does not exist yet; run \`make demo\` first (or set FLYWHEEL_PROJECT)"
	@# the demo project's captures pseudonymise user ids with the demo's public key (flywheel/demo/run.py) unless one is set
	$(if $(filter $(DEMO_PROJECT),$(FLYWHEEL_PROJECT)),FLYWHEEL_PSEUDONYM_KEY=$${FLYWHEEL_PSEUDONYM_KEY:-flywheel-demo-only-pseudonym-key}) \
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/dg dev

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf .flywheel .dagster
