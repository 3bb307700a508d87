"""The overhead floor as a Lambda handler: the INSERT and the SQS send that POST /jobs needs, nothing else.

No framework, no validation model, no logging: what remains is the cost the service cannot avoid,
so the real submit function's latency over this one is what its framework and code add.
Served by the same runner machinery as the real functions (see bench.floor).
"""

import json
import os
import uuid

import boto3
import psycopg

_sqs = boto3.client("sqs")
_connection = None


def connect() -> psycopg.Connection:
    return psycopg.connect(
        os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=None, application_name="bench-floor"
    )


def _database() -> psycopg.Connection:
    global _connection
    if _connection is None or _connection.closed:
        _connection = connect()
    return _connection


def store_and_send(connection: psycopg.Connection, owner: str, guidelines: str) -> dict:
    event_id = uuid.uuid4()
    created_at, status = connection.execute(
        "INSERT INTO jobs (event_id, owner, guidelines) VALUES (%s, %s, %s) RETURNING created_at, status",
        (event_id, owner, guidelines),
    ).fetchone()
    message = json.dumps({"event_id": str(event_id)})
    _sqs.send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message)
    return {"event_id": str(event_id), "status": status, "created_at": created_at.isoformat()}


def handler(event: dict, context: object) -> dict:
    guidelines = json.loads(event["body"] or "{}").get("guidelines")
    if not isinstance(guidelines, str) or not guidelines.strip():
        return {"statusCode": 422, "body": "{}"}
    owner = event["requestContext"]["identity"]["apiKeyId"]
    return {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(store_and_send(_database(), owner, guidelines)),
    }
