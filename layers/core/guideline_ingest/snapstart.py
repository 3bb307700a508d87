"""State that must not outlive a SnapStart snapshot, re-created after each restore.

With `ApiColdStart: snapstart` Lambda initialises a function once, when a version is published,
and resumes every new execution environment from that memory snapshot. What init left behind is
then shared by environments that may run hours later, on other hosts:
- the PostgreSQL connection: a socket of another machine's past (and the password it was opened
  with, which may have been rotated since): closed; the next one reads its secret again;
- the SQS client: its kept-alive connections and the credentials it resolved at init, which are
  the snapshotting environment's and expire: made again on first use;
- the `random` module's state, identical in every restored environment (jitter would be the same
  everywhere): seeded again from the operating system.

`snapshot_restore_py` exists only in Lambda's Python runtime (3.12+); anywhere else nothing is ever
restored, so nothing is registered.
"""

from __future__ import annotations

import random

from guideline_ingest import db, queue


def renew_after_restore() -> None:
    db.close_connection()
    queue.sqs_client.cache_clear()
    random.seed()


def register_restore_hooks() -> bool:
    """Register `renew_after_restore` with the runtime; False where there is no SnapStart runtime."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(renew_after_restore)
    return True
