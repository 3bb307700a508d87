"""Secrets Manager values through the AWS Parameters and Secrets Lambda Extension.

The extension answers on localhost over HTTP, so a function reads its secrets
without importing boto3 (the status function stays light). It caches each value for
SECRETS_MANAGER_TTL seconds (default and maximum 300): callers ask it whenever they
need a secret (a new database connection, an LLM call) instead of keeping the value,
so a rotated secret is in use within five minutes without a cold start.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request


def read_secret(secret_id: str) -> str:
    port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
    url = f"http://localhost:{port}/secretsmanager/get?secretId={urllib.parse.quote(secret_id, safe='')}"
    request = urllib.request.Request(
        url, headers={"X-Aws-Parameters-Secrets-Token": os.environ["AWS_SESSION_TOKEN"]}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed loopback URL
        return json.loads(response.read())["SecretString"]
