"""The jobs table. Every state change is one guarded UPDATE, so a finished job
never changes again and a stale worker cannot overwrite a newer attempt."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from psycopg.types.json import Jsonb

from guideline_ingest.db import connection
from guideline_ingest.models import JobStatus


@dataclass(frozen=True)
class Claim:
    owner: str
    guidelines: str  # a document's extracted text once stored, "" before
    attempt: int
    callback_url: str | None
    retries: int  # transient failures before this claim: the backoff exponent
    age_seconds: float  # since the job was created, at the claim: what is left of its retry budget
    event_id: UUID | None = None
    document_key: str | None = None  # the original in the documents bucket; None for plain text
    document_media_type: str | None = None
    document_map: dict | None = None  # ExtractedDocument.to_map(), once extracted


@dataclass(frozen=True)
class NewDocument:
    """A job's file: in the bucket already (sent in the request), or awaited until the form expires."""

    key: str
    media_type: str
    filename: str | None
    size_bytes: int
    upload_expiry_seconds: int | None = None  # None: the file is stored, the job is PENDING


@dataclass(frozen=True)
class NewJob:
    """A job to insert: its text in `guidelines`, or a document ("" until it is extracted)."""

    event_id: UUID
    owner: str
    guidelines: str
    callback_url: str | None
    document: NewDocument | None = None


_JOB_COLUMNS = (
    "event_id, status, created_at, updated_at, result, error, steps, progress,"
    " callback_url, webhook_status, webhook_attempts, webhook_last_error, webhook_delivered_at,"
    " document_media_type, document_filename, document_size_bytes, document_characters,"
    " (document_map->>'page_count')::integer AS document_page_count"
)
# What a new job's 202 answer needs (JobAccepted): each column more is decoded on every submit.
_ACCEPTED_COLUMNS = "event_id, status, created_at, upload_expires_at"
_INSERTED_COLUMNS = (
    "event_id, owner, guidelines, callback_url, status, document_key, document_media_type,"
    " document_filename, document_size_bytes, upload_expires_at"
)
_INSERTED_VALUES = (
    "%(event_id)s, %(owner)s, %(guidelines)s, %(callback_url)s, %(status)s, %(key)s, %(media_type)s,"
    " %(filename)s, %(size_bytes)s, now() + make_interval(secs => %(expiry)s)"
)
# On every move to a final state: a job with a callback now has a webhook to deliver.
_WEBHOOK_DUE = (
    "webhook_status = CASE WHEN callback_url IS NOT NULL THEN 'PENDING' END,"
    " webhook_enqueued_at = CASE WHEN callback_url IS NOT NULL THEN now() END"
)
# A job in one of these never changes again (JobStatus says which they are).
_TERMINAL = [status.value for status in JobStatus if status.is_terminal]
# The sweeper re-sends a delivery whose message has been silent this long (past all backoff).
WEBHOOK_LOST_AFTER_SECONDS = 3600
IDEMPOTENCY_RETENTION_HOURS = 24
# A keyed request not finished after this long died; its job exists and the sweeper sends it.
IN_FLIGHT_SECONDS = 30


def _inserted(job: NewJob) -> dict:
    document = job.document
    awaiting = document is not None and document.upload_expiry_seconds is not None
    return {
        "event_id": job.event_id,
        "owner": job.owner,
        "guidelines": job.guidelines,
        "callback_url": job.callback_url,
        "status": "AWAITING_UPLOAD" if awaiting else "PENDING",
        "key": document.key if document else None,
        "media_type": document.media_type if document else None,
        "filename": document.filename if document else None,
        "size_bytes": document.size_bytes if document else None,
        "expiry": document.upload_expiry_seconds if awaiting else None,
    }


def insert_job(job: NewJob) -> dict:
    return (
        connection()
        .execute(
            f"INSERT INTO jobs ({_INSERTED_COLUMNS}) VALUES ({_INSERTED_VALUES})"  # noqa: S608 - constant column list
            f" RETURNING {_ACCEPTED_COLUMNS}",
            _inserted(job),
        )
        .fetchone()
    )


def insert_job_once(job: NewJob, key: str, request_hash: str) -> dict | None:
    """Insert the job and its idempotency key in one statement; None when the key is live already.

    A key older than the retention is taken over, as if it had been deleted.
    """
    return (
        connection()
        .execute(
            f"""
            WITH claimed AS (
                INSERT INTO idempotency_keys AS k (owner, key, request_hash, event_id)
                VALUES (%(owner)s, %(idempotency_key)s, %(hash)s, %(event_id)s)
                ON CONFLICT (owner, key) DO UPDATE
                   SET request_hash = EXCLUDED.request_hash, event_id = EXCLUDED.event_id,
                       created_at = now(), completed_at = NULL
                 WHERE k.created_at < now() - make_interval(hours => %(retention_hours)s)
                RETURNING 1
            )
            INSERT INTO jobs ({_INSERTED_COLUMNS})
            SELECT {_INSERTED_VALUES}
             WHERE EXISTS (SELECT 1 FROM claimed)
            RETURNING {_ACCEPTED_COLUMNS}
            """,  # noqa: S608 - constant column list
            {
                **_inserted(job),
                "idempotency_key": key,
                "hash": request_hash,
                "retention_hours": IDEMPOTENCY_RETENTION_HOURS,
            },
        )
        .fetchone()
    )


def find_idempotent_job(owner: str, key: str) -> dict | None:
    """The job a live key stands for, with what is needed to decide replay, conflict or in-flight."""
    return (
        connection()
        .execute(
            f"""
            SELECT k.request_hash, k.completed_at IS NOT NULL AS completed,
                   k.created_at > now() - make_interval(secs => %s) AS recent, j.*
              FROM idempotency_keys k
              JOIN LATERAL (
                   SELECT {_JOB_COLUMNS}, document_key, upload_expires_at FROM jobs
                    WHERE jobs.event_id = k.event_id) j ON true
             WHERE k.owner = %s AND k.key = %s
            """,  # noqa: S608 - constant column list
            (IN_FLIGHT_SECONDS, owner, key),
        )
        .fetchone()
    )


def complete_idempotency_key(owner: str, key: str) -> None:
    connection().execute(
        "UPDATE idempotency_keys SET completed_at = now() WHERE owner = %s AND key = %s", (owner, key)
    )


def delete_expired_idempotency_keys() -> int:
    cursor = connection().execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %s)",
        (IDEMPOTENCY_RETENTION_HOURS,),
    )
    return cursor.rowcount


def delete_unqueued_job(event_id: UUID) -> None:
    """Undo an insert whose message could not be sent (nothing can have claimed it)."""
    connection().execute(
        "DELETE FROM jobs WHERE event_id = %s AND status IN ('PENDING', 'AWAITING_UPLOAD') AND attempts = 0",
        (event_id,),
    )


def find_job(event_id: UUID, owner: str) -> dict | None:
    return (
        connection()
        .execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE event_id = %s AND owner = %s", (event_id, owner))  # noqa: S608 - constant column list
        .fetchone()
    )


def cancel_job(event_id: UUID, owner: str) -> dict | None:
    """Unfinished -> CANCELLED; None when there is no such unfinished job of this owner."""
    return (
        connection()
        .execute(
            f"""
            UPDATE jobs SET status = 'CANCELLED', lease_expires_at = NULL, updated_at = now(), {_WEBHOOK_DUE}
             WHERE event_id = %s AND owner = %s AND status <> ALL(%s)
         RETURNING {_JOB_COLUMNS}
            """,  # noqa: S608 - constant column list
            (event_id, owner, _TERMINAL),
        )
        .fetchone()
    )


def list_jobs(owner: str, status: str | None, after: tuple | None, limit: int) -> list[dict]:
    """The owner's jobs, newest first, strictly after the keyset position `after` (created_at, event_id)."""
    return (
        connection()
        .execute(
            """
            SELECT event_id, status, created_at, updated_at FROM jobs
             WHERE owner = %(owner)s
               AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(created_at)s::timestamptz IS NULL
                    OR (created_at, event_id) < (%(created_at)s, %(event_id)s::uuid))
             ORDER BY created_at DESC, event_id DESC
             LIMIT %(limit)s
            """,
            {
                "owner": owner,
                "status": status,
                "created_at": after[0] if after else None,
                "event_id": after[1] if after else None,
                "limit": limit,
            },
        )
        .fetchall()
    )


def find_cached_result(cache_key: str, owner: str | None) -> dict | None:
    """A completed job's result for the same input; any owner's only when `owner` is None."""
    row = (
        connection()
        .execute(
            """
            SELECT result FROM jobs
             WHERE cache_key = %s AND status = 'COMPLETED' AND (%s::text IS NULL OR owner = %s)
             LIMIT 1
            """,
            (cache_key, owner, owner),
        )
        .fetchone()
    )
    return row["result"] if row else None


def job_status(event_id: UUID) -> str | None:
    row = connection().execute("SELECT status FROM jobs WHERE event_id = %s", (event_id,)).fetchone()
    return row["status"] if row else None


def claim_job(event_id: UUID, lease_seconds: float, steps: list[dict]) -> Claim | None:
    """PENDING, or PROCESSING with an expired lease, -> PROCESSING for this attempt.

    The claim's message was received now: due_at records it, so the sweeper knows when a message
    given back by a dead worker (it returns after the visibility timeout) can no longer be live."""
    row = (
        connection()
        .execute(
            """
            UPDATE jobs
               SET status = 'PROCESSING', attempts = attempts + 1, updated_at = now(), steps = %s,
                   lease_expires_at = now() + make_interval(secs => %s), due_at = now()
             WHERE event_id = %s
               AND (status = 'PENDING' OR (status = 'PROCESSING' AND lease_expires_at < now()))
         RETURNING owner, guidelines, attempts, callback_url, retries,
                   extract(epoch FROM now() - created_at)::float8 AS age_seconds,
                   document_key, document_media_type, document_map
            """,
            (Jsonb(steps), lease_seconds, event_id),
        )
        .fetchone()
    )
    if row is None:
        return None
    return Claim(
        owner=row["owner"],
        guidelines=row["guidelines"],
        attempt=row["attempts"],
        callback_url=row["callback_url"],
        retries=row["retries"],
        age_seconds=row["age_seconds"],
        event_id=event_id,
        document_key=row["document_key"],
        document_media_type=row["document_media_type"],
        document_map=row["document_map"],
    )


def store_extraction(event_id: UUID, attempt: int, text: str, document_map: dict) -> bool:
    """Keep a document's extracted text and its map, once, while this attempt holds the job:
    a retry reads them instead of extracting again."""
    cursor = connection().execute(
        """
        UPDATE jobs SET guidelines = %s, document_map = %s, document_characters = %s, updated_at = now()
         WHERE event_id = %s AND status = 'PROCESSING' AND attempts = %s
        """,
        (text, Jsonb(document_map), len(text), event_id, attempt),
    )
    return cursor.rowcount == 1


def start_uploaded_job(document_key: str, size_bytes: int) -> dict | None:
    """AWAITING_UPLOAD -> PENDING for the one job issued this exact key; None for any other key,
    or a job no longer awaiting its upload (expired, cancelled, or started by an earlier event)."""
    return (
        connection()
        .execute(
            """
            UPDATE jobs
               SET status = 'PENDING', document_size_bytes = %s, updated_at = now(),
                   enqueued_at = now(), due_at = now()
             WHERE document_key = %s AND status = 'AWAITING_UPLOAD'
         RETURNING event_id, owner
            """,
            (size_bytes, document_key),
        )
        .fetchone()
    )


def record_progress(event_id: UUID, attempt: int, steps: list[dict], progress: dict) -> bool:
    return _update_claimed(event_id, attempt, "PROCESSING", steps, progress=progress)


def complete_job(
    event_id: UUID, attempt: int, result: dict, steps: list[dict], cache_key: str, progress: dict | None
) -> bool:
    return _update_claimed(
        event_id, attempt, "COMPLETED", steps, result=result, cache_key=cache_key, progress=progress
    )


def chunk_results(event_id: UUID) -> list[dict]:
    """The chunk answers stored so far for the job, by any of its attempts."""
    return (
        connection()
        .execute(
            """
            SELECT chunk_index, fingerprint, result, input_tokens, output_tokens, model
              FROM job_chunks WHERE event_id = %s ORDER BY chunk_index
            """,
            (event_id,),
        )
        .fetchall()
    )


def save_chunk(event_id: UUID, attempt: int, chunk: dict, steps: list[dict], progress: dict) -> bool:
    """Store one chunk's answer and the job's progress in one statement, only while this attempt
    holds the job. A stored chunk of another fingerprint (the chunking changed) is replaced."""
    cursor = connection().execute(
        """
        WITH claimed AS (
            UPDATE jobs SET steps = %(steps)s, progress = %(progress)s, updated_at = now()
             WHERE event_id = %(event_id)s AND status = 'PROCESSING' AND attempts = %(attempt)s
         RETURNING event_id
        )
        INSERT INTO job_chunks AS c
               (event_id, chunk_index, fingerprint, result, input_tokens, output_tokens, model)
        SELECT event_id, %(chunk_index)s, %(fingerprint)s, %(result)s, %(input_tokens)s,
               %(output_tokens)s, %(model)s
          FROM claimed
        ON CONFLICT (event_id, chunk_index) DO UPDATE
           SET fingerprint = EXCLUDED.fingerprint, result = EXCLUDED.result,
               input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
               model = EXCLUDED.model, created_at = now()
        """,
        {
            **chunk,
            "result": Jsonb(chunk["result"]),
            "steps": Jsonb(steps),
            "progress": Jsonb(progress),
            "event_id": event_id,
            "attempt": attempt,
        },
    )
    return cursor.rowcount == 1


def continue_job(event_id: UUID, attempt: int, steps: list[dict], progress: dict) -> bool:
    """Give the claim back before the deadline, with chunks left: PENDING and due now, its next
    message sent at once. Counted apart from retries and from workers that died."""
    cursor = connection().execute(
        """
        UPDATE jobs
           SET status = 'PENDING', steps = %(steps)s, progress = %(progress)s, updated_at = now(),
               lease_expires_at = NULL, continuations = continuations + 1,
               enqueued_at = now(), due_at = now()
         WHERE event_id = %(event_id)s AND status = 'PROCESSING' AND attempts = %(attempt)s
        """,
        {"steps": Jsonb(steps), "progress": Jsonb(progress), "event_id": event_id, "attempt": attempt},
    )
    return cursor.rowcount == 1


def fail_job(event_id: UUID, attempt: int, error: dict, steps: list[dict]) -> bool:
    return _update_claimed(event_id, attempt, "FAILED", steps, error=error)


def release_job(event_id: UUID, attempt: int, steps: list[dict], delay_seconds: int, error: str) -> bool:
    """Give a claimed job back after a transient failure: its next message is sent now, delayed by
    `delay_seconds`, so it is due then (the sweeper leaves it alone until it is overdue)."""
    cursor = connection().execute(
        """
        UPDATE jobs
           SET status = 'PENDING', steps = %(steps)s, updated_at = now(), lease_expires_at = NULL,
               retries = retries + 1, last_transient_error = %(error)s,
               enqueued_at = now(), due_at = now() + make_interval(secs => %(delay)s)
         WHERE event_id = %(event_id)s AND status = 'PROCESSING' AND attempts = %(attempt)s
        """,
        {
            "steps": Jsonb(steps),
            "error": error,
            "delay": delay_seconds,
            "event_id": event_id,
            "attempt": attempt,
        },
    )
    return cursor.rowcount == 1


def _update_claimed(
    event_id: UUID,
    attempt: int,
    status: str,
    steps: list[dict],
    result: dict | None = None,
    error: dict | None = None,
    cache_key: str | None = None,
    progress: dict | None = None,
) -> bool:
    """The one way a claimed job changes: only while this attempt still holds it."""
    cursor = connection().execute(
        """
        UPDATE jobs
           SET status = %(status)s, result = %(result)s, error = %(error)s, steps = %(steps)s,
               cache_key = %(cache_key)s, updated_at = now(),
               progress = COALESCE(%(progress)s, progress),
               lease_expires_at = CASE WHEN %(status)s::text = 'PROCESSING' THEN lease_expires_at END,
               webhook_status = CASE WHEN %(final)s AND callback_url IS NOT NULL THEN 'PENDING' END,
               webhook_enqueued_at = CASE WHEN %(final)s AND callback_url IS NOT NULL THEN now() END
         WHERE event_id = %(event_id)s AND status = 'PROCESSING' AND attempts = %(attempt)s
        """,
        {
            "status": status,
            "final": JobStatus(status).is_terminal,
            "result": Jsonb(result) if result is not None else None,
            "error": Jsonb(error) if error is not None else None,
            "steps": Jsonb(steps),
            "cache_key": cache_key,
            "progress": Jsonb(progress) if progress is not None else None,
            "event_id": event_id,
            "attempt": attempt,
        },
    )
    return cursor.rowcount == 1


def _fail_unfinished(error: str, where: str, params: dict) -> list[dict]:
    """End FAILED, in one UPDATE, the unfinished jobs `where` selects, with the JobError the SQL
    expression `error` builds. Returns their event_id and whether a webhook is now due."""
    return (
        connection()
        .execute(
            f"""
        UPDATE jobs
           SET status = 'FAILED', lease_expires_at = NULL, updated_at = now(), {_WEBHOOK_DUE},
               error = {error}
         WHERE {where}
     RETURNING event_id, webhook_status IS NOT NULL AS webhook_due
        """,  # noqa: S608 - constant SQL fragments
            params,
        )
        .fetchall()
    )


def fail_abandoned_jobs(max_attempts: int) -> list[dict]:
    """Jobs whose workers died `max_attempts` times end FAILED instead of running for ever.
    A claim given back after a transient failure (retries) or to continue a long document
    (continuations) is not a dead worker."""
    return _fail_unfinished(
        """jsonb_build_object(
               'type', 'attempts_exhausted',
               'message', 'The job was started ' || attempts - retries - continuations || ' times and never '
                          || 'finished; it was given up.')""",
        "status = 'PROCESSING' AND lease_expires_at < now()"
        " AND attempts - retries - continuations >= %(max_attempts)s",
        {"max_attempts": max_attempts},
    )


def fail_expired_uploads(grace_seconds: float) -> list[dict]:
    """Jobs whose upload never arrived before their form expired (plus a grace for an upload begun
    just in time) end FAILED with upload_expired."""
    return _fail_unfinished(
        """jsonb_build_object(
               'type', 'upload_expired',
               'message', 'The document was not uploaded before the upload form expired at '
                          || to_char(upload_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                          || '; submit the job again.')""",
        "status = 'AWAITING_UPLOAD' AND upload_expires_at < now() - make_interval(secs => %(grace)s)",
        {"grace": grace_seconds},
    )


# No live message can bring the job any more: PENDING, or PROCESSING by a worker that died.
_SILENT = """
    (status = 'PENDING' OR (status = 'PROCESSING' AND lease_expires_at < now()))
    AND due_at < now() - make_interval(secs => %(silent_seconds)s)
"""


def fail_jobs_out_of_budget(
    budget_seconds: float, silent_seconds: float, budget: str, llm_reason: str
) -> list[dict]:
    """Jobs older than their retry budget that no message will bring again end FAILED, with a reason
    that says why: the LLM stayed unavailable, workers died, or no delivery ever reached a claim.
    `budget` is the budget as the reason states it ("6 h"); `llm_reason` is the LLM's reason with
    %s where the job's last transient error goes."""
    return _fail_unfinished(
        """CASE
               WHEN last_transient_error IS NOT NULL THEN jsonb_build_object(
                   'type', 'llm_unavailable',
                   'message', format(%(llm_reason)s, last_transient_error))
               WHEN attempts > 0 THEN jsonb_build_object(
                   'type', 'attempts_exhausted',
                   'message', 'The job was started ' || attempts || ' times and never finished '
                              || 'within its retry budget of ' || %(budget)s || '.')
               ELSE jsonb_build_object(
                   'type', 'not_started',
                   'message', 'The job could not be started within its retry budget of '
                              || %(budget)s || ': every delivery failed before the job was '
                              || 'claimed (the process function or the database was failing).')
           END""",
        f"{_SILENT} AND created_at < now() - make_interval(secs => %(budget_seconds)s)",
        {
            "silent_seconds": silent_seconds,
            "budget_seconds": budget_seconds,
            "budget": budget,
            "llm_reason": llm_reason,
        },
    )


def mark_forgotten_jobs_enqueued(silent_seconds: float, limit: int) -> list[UUID]:
    """Jobs with no live message: due longer than `silent_seconds` ago (the visibility timeout, which
    a delivery that failed before its claim or a dead worker's message waits out, plus a grace
    period). A job waiting out its backoff is due in the future and is left alone. Their enqueue
    and due times are set now, before re-sending."""
    rows = connection().execute(
        f"""
        UPDATE jobs SET enqueued_at = now(), due_at = now()
         WHERE event_id IN (
               SELECT event_id FROM jobs
                WHERE {_SILENT}
                ORDER BY due_at
                LIMIT %(limit)s
                  FOR UPDATE SKIP LOCKED)
     RETURNING event_id
        """,  # noqa: S608 - constant SQL fragment
        {"silent_seconds": silent_seconds, "limit": limit},
    )
    return [row["event_id"] for row in rows]


def find_webhook_delivery(event_id: UUID) -> dict | None:
    """The job document and delivery state, for the webhook function (any owner: it has no caller)."""
    return (
        connection()
        .execute(f"SELECT owner, {_JOB_COLUMNS} FROM jobs WHERE event_id = %s", (event_id,))  # noqa: S608 - constant column list
        .fetchone()
    )


def record_webhook_attempt(event_id: UUID, error: str) -> None:
    connection().execute(
        """
        UPDATE jobs
           SET webhook_attempts = webhook_attempts + 1, webhook_last_error = %s, webhook_enqueued_at = now()
         WHERE event_id = %s AND webhook_status = 'PENDING'
        """,
        (error, event_id),
    )


def finish_webhook(event_id: UUID, delivered: bool, error: str | None) -> None:
    connection().execute(
        """
        UPDATE jobs
           SET webhook_status = CASE WHEN %(delivered)s THEN 'DELIVERED' ELSE 'FAILED' END,
               webhook_attempts = webhook_attempts + 1, webhook_last_error = %(error)s,
               webhook_delivered_at = CASE WHEN %(delivered)s THEN now() END
         WHERE event_id = %(event_id)s AND webhook_status = 'PENDING'
        """,
        {"delivered": delivered, "error": error, "event_id": event_id},
    )


def mark_lost_webhooks_enqueued(limit: int) -> list[UUID]:
    """Deliveries still PENDING whose message has been silent for longer than any backoff."""
    rows = connection().execute(
        """
        UPDATE jobs SET webhook_enqueued_at = now()
         WHERE event_id IN (
               SELECT event_id FROM jobs
                WHERE webhook_status = 'PENDING'
                  AND webhook_enqueued_at < now() - make_interval(secs => %s)
                ORDER BY webhook_enqueued_at
                LIMIT %s
                  FOR UPDATE SKIP LOCKED)
     RETURNING event_id
        """,
        (WEBHOOK_LOST_AFTER_SECONDS, limit),
    )
    return [row["event_id"] for row in rows]


def ping_database() -> None:
    connection().execute("SELECT 1")
