"""The documents bucket: the original files jobs come from. Keys cannot be guessed and include
their owner's digest; an upload starts only the one job its exact key was issued for."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from uuid import UUID

# Files sent in the request body; presigned uploads go under UPLOAD_PREFIX, the only prefix whose
# new objects the bucket announces to the uploads queue (infra/template.yaml).
DOCUMENT_PREFIX = "documents/"
UPLOAD_PREFIX = "uploads/"
# Bounds a hung call like the SQS client's (queue.py); an upload of 4.5 MB takes well under this.
S3_CONNECT_SECONDS = 1
S3_READ_SECONDS = 5
S3_ATTEMPTS = 2


class ObjectStoreUnavailable(Exception):
    """S3 did not store or return the object; nothing of the job was kept."""


def owner_segment(owner: str) -> str:
    """The API key's share of an object key: a digest, never the key id itself."""
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def new_object_key(prefix: str, owner: str, event_id: UUID) -> str:
    # 256 random bits: knowing a job's event_id does not give its object key.
    return f"{prefix}{owner_segment(owner)}/{event_id}/{secrets.token_urlsafe(32)}"


@cache
def s3_client():
    # Imported on first use, like the SQS client: the status function must not load boto3.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        config=Config(
            signature_version="s3v4",
            connect_timeout=S3_CONNECT_SECONDS,
            read_timeout=S3_READ_SECONDS,
            retries={"mode": "standard", "total_max_attempts": S3_ATTEMPTS},
        ),
    )


def put_document(bucket: str, key: str, data: bytes, media_type: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=media_type)
    except (BotoCoreError, ClientError) as error:
        raise ObjectStoreUnavailable(str(error)) from error


def get_document(bucket: str, key: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as error:
        raise ObjectStoreUnavailable(str(error)) from error


def presigned_upload(bucket: str, key: str, media_type: str, size_bytes: int, expires_in: int) -> dict:
    """A presigned POST (url and fields) for exactly this key, this Content-Type and this size.
    Signed locally: no request is made. A presigned PUT could not bound the size."""
    return s3_client().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": media_type},
        Conditions=[
            {"Content-Type": media_type},
            ["content-length-range", size_bytes, size_bytes],
        ],
        ExpiresIn=expires_in,
    )
