# DualTalk ROS 2 — the README's two commands are `make demo` and `make test`.
# Both run `make setup` first, which builds .venv when it is missing or stale (and is a
# quick check otherwise). Override the torch build for a CUDA robot, e.g.
#   make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
SHELL := /bin/bash
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
export VENV TORCH

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/with_ros_env.sh $(VENV)/bin/python scripts/demo.py

test: setup
	@bash scripts/with_ros_env.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	@bash scripts/with_ros_env.sh $(VENV)/bin/python bench/run_all.py

clean:
	rm -rf build $(VENV) .pytest_cache
