"""Print the environment infra/template.yaml gives one function, a NAME=value a line, for the
import check of scripts/verify-infra.sh (`env -i`): usage `import_environment.py SubmitFunction`.

The values come from the template, its parameters at their defaults (tests/support.py reads it), so
the check restates none of them. What only AWS resolves (queue URLs, secrets, the database, a
parameter left empty) gets a stand-in of the right shape: importing builds the settings and
connects to nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import template_environment  # after sys.path names the repository

STAND_INS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "DATABASE_URL": "postgresql://import-check@127.0.0.1:1/none",
    "OPENAI_API_KEY": "import-check",
    "JOBS_QUEUE_URL": "http://localhost:4566/000000000000/jobs",
    "WEBHOOK_QUEUE_URL": "http://localhost:4566/000000000000/webhooks",
    "WEBHOOK_SIGNING_SECRET": "import-check-webhook-signing-secret-0123456789",
}


def import_environment(logical_id: str) -> dict[str, str]:
    function = logical_id.removesuffix("Function").lower()
    return STAND_INS | template_environment(function)


if __name__ == "__main__":
    for name, value in import_environment(sys.argv[1]).items():
        print(f"{name}={value}")
