#!/usr/bin/env bash
# Prints the interpreter to build .venv from: the distribution's /usr/bin/python3 when it is 3.11 or
# newer and can make a virtualenv, otherwise python3 from PATH. Distributions (Debian, Ubuntu,
# Fedora) build their Python with profile-guided and link-time optimization, which pyenv's and
# python-build's defaults leave out; on our machines the same stack spends about a fifth less CPU per
# request on it (docs/performance.md). `make PYTHON=/path/to/python3 install` chooses another.
set -euo pipefail

for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n $candidate && -x $candidate ]] &&
        "$candidate" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        printf '%s\n' "$candidate"
        exit 0
    fi
done
echo python3
