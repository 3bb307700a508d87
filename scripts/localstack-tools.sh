#!/usr/bin/env bash
# Creates or refreshes .tools/localstack, LocalStack's own virtualenv for `make localstack` and
# `make test-localstack`: localstack-core at localstack/requirements.txt and localstack/constraints.txt
# on Python 3.13+, plus, editable and without dependencies, the local-process Lambda executor
# (localstack/executor, a plux plugin) and this repository (the executor runs devstack's
# execution environments). Also makes sure the SAM CLI's virtualenv exists (scripts/sam-tools.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOOLS=${LOCALSTACK_TOOLS:-.tools/localstack}
inputs=(localstack/requirements.txt localstack/constraints.txt localstack/executor/pyproject.toml pyproject.toml)
stamp=$TOOLS/.installed-$(cat "${inputs[@]}" | sha256sum | cut -c1-16)

if [[ ! -f $stamp ]]; then
    if ! python=$(scripts/find-python.sh 3.13 3.14); then
        echo "LocalStack 4.14 needs Python 3.13 or newer (it imports warnings.deprecated, new in 3.13);" >&2
        echo "none was found. Install python3.13 or set PYTHON313=/path/to/python3.13." >&2
        exit 1
    fi
    if [[ -x $TOOLS/bin/python ]] && ! "$TOOLS/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then
        rm -rf "$TOOLS"  # made by an older Python
    fi
    [[ -x $TOOLS/bin/python ]] || "$python" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip
    "$TOOLS/bin/python" -m pip install --quiet -r localstack/requirements.txt -c localstack/constraints.txt
    "$TOOLS/bin/python" -m pip install --quiet --no-deps -e . -e localstack/executor
    rm -f "$TOOLS"/.installed-*
    touch "$stamp"
fi
scripts/sam-tools.sh
