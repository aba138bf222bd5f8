# gunicorn reads this file from the working directory: mask phone numbers in its access log.
logger_class = "gateway.core.logs.GunicornLogger"

# Metrics from every worker (prometheus-client's multiprocess mode): each process writes its
# counters to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. Set here, before any
# worker imports the app; give the scheduler the same directory to see its metrics too.
import os  # noqa: E402
from pathlib import Path  # noqa: E402

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _instance = os.environ.get("GATEWAY_INSTANCE_PATH") or str(Path(__file__).parent / "instance")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(_instance).resolve() / "prometheus")


def on_starting(server):
    """A new server: forget the metric files of processes that are gone (a previous run's);
    a scheduler already writing to the directory keeps its own."""
    from gateway.metric_files import remove_stale_files

    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    remove_stale_files(path)


def child_exit(server, worker):
    """A worker ended: its live gauges go (its counters are kept, so totals never drop)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
