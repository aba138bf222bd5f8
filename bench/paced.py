"""An open-loop load generator at a fixed rate (what wrk2 does; wrk2 is not packaged in Debian).

    .venv/bin/python bench/paced.py --url http://127.0.0.1:8000 --rate 300 --duration 10 \\
        --requests REQUESTS_FILE

Request *i* is due at ``start + i / rate`` whether or not earlier ones have been answered (one
asyncio task each, a new TCP connection each, as gunicorn's sync workers close the connection
after every response). Its latency runs from that due time, not from when it was actually
written, to the last byte of the response, so a stalled server is not hidden by a waiting
client (no coordinated omission). One thread, one process: ``bench/inbound.py`` runs it as a
process of its own. Prints one line, ``BENCH {json}``, with the achieved rate, the percentiles in
microseconds and the count of non-2xx answers and errors.

The requests file is the one ``bench/inbound.py`` writes for wrk: a signature, a tab, the
form-encoded body, one request a line, the first ``--skip`` passed over; each is sent once (more
requests than lines is an error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import urllib.parse
from pathlib import Path

from benchlib import INBOUND_PATH, percentile

#: give up on a request after this long (counted as an error)
TIMEOUT = 10.0


def build(url: str, lines: list[str]) -> list[bytes]:
    host = urllib.parse.urlsplit(url).netloc
    built = []
    for line in lines:
        signature, body = line.rstrip("\n").split("\t", 1)
        head = (
            f"POST {INBOUND_PATH} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n"
            "Connection: close\r\n\r\n"
        )
        built.append((head + body).encode("ascii"))
    return built


async def one(host: str, port: int, payload: bytes, due: float) -> tuple[float, int]:
    """(latency from the due time in seconds, HTTP status or 0 for an error)."""
    status = 0
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            response = await reader.read()
            writer.close()
        status_line = response.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) > 1 else 0
    except (OSError, TimeoutError, ValueError):
        status = 0
    return time.perf_counter() - due, status


async def run(url: str, payloads: list[bytes], rate: float, count: int) -> dict[str, float]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(host, port, payloads[i], due)))
    sent_in = time.perf_counter() - start
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies = sorted(latency for latency, status in results if 200 <= status < 300)
    return {
        "requests": count,
        "ok": len(latencies),
        "non_2xx": sum(1 for _, status in results if status and not 200 <= status < 300),
        "errors": sum(1 for _, status in results if status == 0),
        "rate_target": rate,
        "rate_sent": count / sent_in if sent_in > 0 else math.nan,
        "elapsed_s": elapsed,
        **{f"p{p}_us": percentile(latencies, p) * 1e6 for p in (50, 90, 99, 99.9)},
        "max_us": (latencies[-1] * 1e6) if latencies else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--requests", type=Path, required=True, help="the requests file")
    parser.add_argument("--skip", type=int, default=0, help="lines sent in earlier rounds")
    args = parser.parse_args()
    lines = args.requests.read_text(encoding="ascii").splitlines()[args.skip :]
    count = int(args.rate * args.duration)
    if count > len(lines):
        sys.exit(f"paced: {count} requests needed, {len(lines)} in {args.requests}")
    payloads = build(args.url, lines[:count])
    result = asyncio.run(run(args.url, payloads, args.rate, count))
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
