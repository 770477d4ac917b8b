#!/usr/bin/env bash
# The test suite (what CI runs).
source "$(dirname "$0")/venv.sh"
python -m pytest "$@"
