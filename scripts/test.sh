#!/usr/bin/env bash
# The test suite (what CI runs): lint (ruff) and type check (mypy), configured in pyproject.toml,
# then the tests. Any of the three failing fails the run.
source "$(dirname "$0")/venv.sh"
ruff check specc tests bench
mypy
python -m pytest "$@"
