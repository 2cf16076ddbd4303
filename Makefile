# DualTalk ROS 2 — the README's two commands are `make demo` and `make test`.
# Both run `make setup` first, which builds .venv when it is missing or stale (and is a
# quick check otherwise). Override the torch build for a CUDA robot, e.g.
#   make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
SHELL := /bin/bash
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
CHECKPOINT ?=
export VENV TORCH

.PHONY: setup demo demo-model live-demo-model test bench clean

setup:
	@bash scripts/setup.sh

# CHECKPOINT=path/to/model.pt runs the demo on another model (default: the bundled demo model)
demo: setup
	@DEMO_CHECKPOINT=$(CHECKPOINT) bash scripts/with_ros_env.sh $(VENV)/bin/python scripts/demo.py

# Re-train the bundled demo model (about 25 minutes on 2 cores; see models/README.md)
demo-model: setup
	@bash scripts/train_demo_model.sh cpu

# Re-train the bundled live (causal) demo model (about 25 minutes on 2 cores; models/README.md)
live-demo-model: setup
	@bash scripts/train_demo_model.sh live

test: setup
	@bash scripts/with_ros_env.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	@bash scripts/with_ros_env.sh $(VENV)/bin/python bench/run_all.py

clean:
	rm -rf build $(VENV) .pytest_cache demo-output
