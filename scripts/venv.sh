# Sourced by scripts/demo.sh and scripts/test.sh: create (once) and activate the local virtualenv.
# torch is pinned to 2.13.0, the CPU build this project is tested with (a bare `torch` can pull a
# multi-GB CUDA build). numpy only silences torch's import-time warning.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${SPECC_VENV:-.venv}"
stamp="$VENV/.specc-installed"
want="$(cat pyproject.toml scripts/venv.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" numpy
    "$VENV/bin/python" -m pip install --quiet -e ".[test,clarena]"
    # timm: the ViT reference of tests/test_vit_tokens.py; --no-deps keeps its torchvision (and any other torch) out.
    "$VENV/bin/python" -m pip install --quiet --no-deps "timm==1.0.15"
    echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
