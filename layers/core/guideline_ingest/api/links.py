"""URLs the API hands out, as relative references that resolve inside the base URL the client called.

API Gateway serves the API under `/<stage>/`, LocalStack under `/_aws/execute-api/<id>/<stage>/`,
so an absolute path like `/jobs/{id}` would leave the API. A relative reference (RFC 3986, 4.2)
computed between two paths of the API does not depend on that prefix: resolved against the URL the
client called, it keeps whatever came before the API's own paths.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver


def link(app: APIGatewayRestResolver, target: str) -> str:
    """A reference to `target` (a path of the API, such as /jobs/<id>) from the current request."""
    # `path` is the request's path without the stage, as the routes see it.
    return relative_reference(app.current_event.path, target)


def relative_reference(base: str, target: str) -> str:
    """The shortest relative reference that resolves against `base` to `target` (both absolute paths)."""
    base_directories = base.split("/")[:-1]
    target_segments = target.split("/")
    shared = 0
    while (
        shared < min(len(base_directories), len(target_segments) - 1)
        and base_directories[shared] == target_segments[shared]
    ):
        shared += 1
    reference = "../" * (len(base_directories) - shared) + "/".join(target_segments[shared:])
    # "" would mean the base itself, and a first segment with ":" would read as a scheme.
    if not reference or ":" in reference.split("/")[0]:
        reference = f"./{reference}"
    return reference
