"""A job's status: its own module, so that tools can name statuses without the service's settings
(models.py reads the environment when it is imported)."""

from enum import StrEnum


class JobStatus(StrEnum):
    # Its document is being uploaded to the presigned form; the upload's arrival makes it PENDING.
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
