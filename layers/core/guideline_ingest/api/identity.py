"""Who is calling: the API key id API Gateway put in the event, and nothing else."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver


class NoApiKeyId(Exception):
    """The request reached a function without an API key id: it is refused, never shared."""


def caller(app: APIGatewayRestResolver) -> str:
    """The API key that made the request owns the job (API Gateway checked the key).

    Fail closed: a request without a key id (a route or stage set up without ApiKeyRequired, a
    direct invocation) gets 403 instead of an owner that every such request would share.
    """
    key_id = app.current_event.request_context.identity.api_key_id
    if not key_id:
        raise NoApiKeyId
    return key_id
