"""Child processes of the runner that serve until their stdin closes."""

from __future__ import annotations

import subprocess


def end_child(process: subprocess.Popen, timeout: float = 5) -> None:
    """Close the child's stdin, which it takes as the sign to exit (as when the runner dies), and
    kill it if it has not exited within `timeout` seconds."""
    process.stdin.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
