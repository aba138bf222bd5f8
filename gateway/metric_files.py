"""The metric files of prometheus-client's multiprocess mode: which to forget when a server
starts. Apart from ``gateway.services.metrics`` so that gunicorn's master process, which calls it
and never builds the app, imports nothing else of the gateway (nor Flask)."""

from __future__ import annotations

import os


def remove_stale_files(path: str) -> int:
    """Delete the files of processes that are gone (a previous run's), keep the live ones' (a
    scheduler already writing to the same directory); returns how many were deleted."""
    removed = 0
    for name in os.listdir(path):
        if not name.endswith(".db"):
            continue
        pid = name.rsplit("_", 1)[-1][: -len(".db")]
        if pid.isdigit() and _alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(path, name))
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
