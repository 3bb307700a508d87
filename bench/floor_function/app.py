"""The overhead floor as a Lambda handler: the INSERT and the SQS send that POST /jobs needs, nothing else.

No framework, no validation model, no logging: what remains is the cost the service cannot avoid,
so the submit handler's CPU over this one's is what its framework and code add. bench.handlers
calls it in-process, in turns with the real handlers.
"""

import json
import os
import uuid

import boto3
import psycopg

_sqs = boto3.client("sqs")
_connection = None


def _database() -> psycopg.Connection:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(
            os.environ["DATABASE_URL"],
            autocommit=True,
            prepare_threshold=None,
            application_name="bench-floor",
        )
    return _connection


def handler(event: dict, context: object) -> dict:
    guidelines = json.loads(event["body"] or "{}").get("guidelines")
    if not isinstance(guidelines, str) or not guidelines.strip():
        return {"statusCode": 422, "body": "{}"}
    event_id = uuid.uuid4()
    created_at, status = (
        _database()
        .execute(
            "INSERT INTO jobs (event_id, owner, guidelines) VALUES (%s, %s, %s) RETURNING created_at, status",
            (event_id, event["requestContext"]["identity"]["apiKeyId"], guidelines),
        )
        .fetchone()
    )
    _sqs.send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=json.dumps({"event_id": str(event_id)})
    )
    return {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {"event_id": str(event_id), "status": status, "created_at": created_at.isoformat()}
        ),
    }
