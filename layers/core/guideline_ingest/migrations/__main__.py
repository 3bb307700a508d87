"""`python -m guideline_ingest.migrations`: migrate the database named by DATABASE_URL."""

import os
import sys

from guideline_ingest.migrations import migrate

if __name__ == "__main__":
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set (make migrate starts the embedded server when it is unset)")
    applied = migrate(url)
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
