"""A consumer process for the crash and signal tests: records each handled body in a file.

Usage: consume.py ENDPOINT QUEUE_URL OUTPUT_FILE HANDLER_SECONDS [SHUTDOWN_TIMEOUT]
"""

from __future__ import annotations

import logging
import sys
import time

from sqs_consumer import Consumer, ConsumerOptions, Message


def main() -> None:
    # To stderr (the test's log file): the signal tests wait for "shutting down gracefully".
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    endpoint, queue_url, output, seconds = sys.argv[1:5]
    shutdown = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0

    def handle(message: Message) -> None:
        with open(output + ".started", "a") as started:
            started.write(message.body + "\n")
        time.sleep(float(seconds))  # the handler's work, as long as the test asks
        with open(output, "a") as done:
            done.write(message.body + "\n")

    options = ConsumerOptions(
        queue_url=queue_url,
        endpoint_url=endpoint,
        region_name="us-east-1",
        visibility_timeout=2,
        concurrency=5,
        wait_time_seconds=1,
        shutdown_timeout=shutdown,
    )
    Consumer(handle, options).start()


if __name__ == "__main__":
    main()
