"""The wire: ours against a plain boto3 loop on a real SQS endpoint, in the same run.

By default it starts the patched moto server of ``../shared/bench/moto_srv.py`` (relative to
the repository root; ``--moto-srv PATH`` to point elsewhere) as a subprocess on a free
127.0.0.1 port, so the server's CPU is spent in another process. ``--endpoint-url URL`` uses
a server you run instead (moto, fauxqs, ...), and nothing is started.

Cases: a no-op handler at concurrency 10, and a 50 ms handler at concurrency 50 (bound
1,000 msgs/s). The plain loop is C threads sharing one boto3 client (max_pool_connections=C),
each: receive 10 -> call the handler on each -> delete_message_batch. Ours is
``Consumer(handler, ConsumerOptions(queue_url=..., endpoint_url=..., concurrency=C))``, which
builds its own boto3 client. CPU per message is this process's ``time.process_time()`` over
the timed span / N: the consumer (or the plain loop) and botocore, never the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import harness

from sqs_consumer import ConsumerOptions

DEFAULT_MOTO_SRV = harness.ROOT.parent / "shared" / "bench" / "moto_srv.py"
REGION = "us-east-1"
CASES = (  # (name, concurrency, work)
    ("no-op C=10", 10, 0.0),
    ("io 50 ms C=50", 50, 0.05),
)


@contextmanager
def moto_server(script: Path):
    """Start moto_srv.py on a free loopback port; yield its endpoint URL; stop it."""
    process = subprocess.Popen(
        [sys.executable, str(script), "0"],
        cwd=script.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()))
        reader.start()
        reader.join(60)
        line = ready[0] if ready else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"{script} did not start (printed {line!r})")
        _, port, mode = line.split()
        yield f"http://127.0.0.1:{port}", mode
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(endpoint: str, connections: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=connections, retries={"total_max_attempts": 1})
    return boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, region_name=REGION, config=config
    )


def _queue(client: Any, n: int) -> str:
    url = client.create_queue(QueueName=f"bench-wire-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    harness.fill(client, url, n, threads=16)
    return url


def plain_loop(client: Any, url: str, concurrency: int, n: int, work: float) -> dict[str, Any]:
    """C threads, each: receive 10 -> handle each -> delete_message_batch (sync handler)."""
    return harness.bare_sync(client, url, workers=concurrency, messages=n, work=work)


def ours(
    endpoint: str,
    url: str,
    strategy: harness.Strategy,
    style: harness.Style,
    c: int,
    n: int,
    w: float,
) -> dict[str, Any]:
    tally = harness.Tally(target=n)
    options = ConsumerOptions(
        queue_url=url,
        endpoint_url=endpoint,
        region_name=REGION,
        worker=strategy,
        concurrency=c,
        wait_time_seconds=1,
    )
    return anyio.run(harness.drive, options, harness.make_handler(style, w, tally), tally)


def run_against(endpoint: str, quick: bool) -> list[dict[str, Any]]:
    n = 1_000 if quick else 3_000
    combos: list[tuple[harness.Strategy, harness.Style]] = (
        [("semaphore", "async")]
        if quick
        else [("semaphore", "async"), ("pool", "async"), ("semaphore", "sync"), ("pool", "sync")]
    )
    rows: list[dict[str, Any]] = []
    for name, concurrency, work in CASES:
        client = _client(endpoint, max(10, concurrency))
        base = plain_loop(client, _queue(client, n), concurrency, n, work)
        base |= {"strategy": "plain boto3 loop", "style": "sync"}
        case = {"case": name, "concurrency": concurrency, "work": work, "messages": n}
        case["bound"] = concurrency / work if work else None
        rows.append(base | case)
        for strategy, style in combos:
            row = ours(endpoint, _queue(client, n), strategy, style, concurrency, n, work)
            row |= case | {"strategy": strategy, "style": style}
            row["ratio_to_plain"] = row["msgs_per_s"] / base["msgs_per_s"]
            row["cpu_ratio_to_plain"] = row["cpu_us_per_msg"] / base["cpu_us_per_msg"]
            rows.append(row)
    for row in rows:
        if row.get("bound"):
            row["ratio_to_bound"] = row["msgs_per_s"] / row["bound"]
    return rows


def print_rows(rows: list[dict[str, Any]], endpoint: str, server: str) -> None:
    print(f"\n== wire: {server} at {endpoint}; ours vs a plain boto3 loop, same run")
    cells = []
    for r in rows:
        plain = r["strategy"].startswith("plain")
        cells.append(
            [
                r["case"],
                r["strategy"],
                r["style"],
                f"{r['msgs_per_s']:,.0f}",
                f"{r['cpu_us_per_msg']:,.0f}",
                "-" if plain else f"{r['ratio_to_plain']:.2f}",
                "-" if plain else f"{r['cpu_ratio_to_plain']:.2f}",
                f"{r['ratio_to_bound']:.2f}" if r.get("ratio_to_bound") else "-",
            ]
        )
    header = ["case", "strategy", "handler", "msgs/s", "CPU us/msg", "msgs/s ratio"]
    print(harness.table(cells, [*header, "CPU ratio", "/bound"]))


def run(quick: bool, endpoint: str | None, moto_srv: Path) -> dict[str, Any]:
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(key, value)
    before = harness.load()
    if endpoint is not None:
        server = "given endpoint"
        rows = run_against(endpoint, quick)
    elif not moto_srv.is_file():
        note = (
            f"wire section skipped: {moto_srv} not found (pass --moto-srv PATH, or "
            "--endpoint-url URL to use a running SQS server)"
        )
        print(f"\n== {note}")
        return {"skipped": note}
    else:
        with moto_server(moto_srv) as (endpoint, mode):
            server = f"moto_srv.py ({mode})"
            rows = run_against(endpoint, quick)
    print_rows(rows, endpoint, server)
    return {
        "load_before": before,
        "load_after": harness.load(),
        "server": server,
        "endpoint": endpoint,
        "moto": harness._version("moto"),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ours vs a plain boto3 loop on an SQS server")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--endpoint-url", help="use this SQS endpoint; start no server")
    parser.add_argument("--moto-srv", type=Path, default=DEFAULT_MOTO_SRV)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    document = {"machine": harness.machine(), "quick": args.quick}
    document |= run(args.quick, args.endpoint_url, args.moto_srv)
    document["seconds"] = time.perf_counter() - started
    harness.write_json(harness.RESULTS / "wire.json", document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
