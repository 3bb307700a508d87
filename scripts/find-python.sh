#!/usr/bin/env bash
# Prints the path of a working interpreter for the first of the given versions found, e.g.
# `scripts/find-python.sh 3.12 3.13`; exits 1 when there is none. Looks at $PYTHON312 (for 3.12),
# pyenv's versions, PATH and the usual prefixes. A pyenv shim whose version is not selected fails
# ("command not found"), so every candidate is run once to check it.
set -euo pipefail

for version in "$@"; do
    variable=PYTHON${version//./}
    for candidate in "${!variable:-}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/python"$version" \
        "$(command -v "python$version" || true)" /usr/local/bin/python"$version" /usr/bin/python"$version"; do
        if [[ -n $candidate && -x $candidate ]] &&
            [[ $("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == "$version" ]]; then
            printf '%s\n' "$candidate"
            exit 0
        fi
    done
done
exit 1
