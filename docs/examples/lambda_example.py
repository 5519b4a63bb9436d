"""LambdaHandler: run an existing AWS Lambda SQS function, unchanged, as a consumer.

Run it with `python docs/examples/lambda_example.py`; it uses the in-memory queue
`memory://lambda-example`. Order 3 fails on its first delivery: the function reports it in
`batchItemFailures`, so only that message comes back (after the retry delay) and succeeds.
"""

import json
from typing import Any

from sqs_consumer import Consumer, ConsumerOptions, ExponentialBackoff, LambdaHandler
from sqs_consumer.testing import MemorySQS

QUEUE_URL = "memory://lambda-example"
COUNT = 6
processed: dict[int, int] = {}  # order -> the receive that processed it


# --- the Lambda function, exactly as deployed (nothing here knows about sqs-consumer) -------------
def process(record: dict[str, Any]) -> None:
    order = json.loads(record["body"])["order"]
    receive = int(record["attributes"]["ApproximateReceiveCount"])
    if order == 3 and receive == 1:
        raise RuntimeError("payment service timed out")
    processed[order] = receive


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        try:
            process(record)
        except Exception as error:
            print(f"{context.aws_request_id}: {record['messageId']} failed: {error}")
            failures.append({"itemIdentifier": record["messageId"]})
    if len(processed) == COUNT:
        consumer.stop()  # only for this example: stop once every order is in
    return {"batchItemFailures": failures}


# --- the consumer that runs it -------------------------------------------------------------------
handler = LambdaHandler(lambda_handler, function_name="orders", timeout=60)
consumer = Consumer(
    handler,  # a batch handler: each receive (up to batch_size messages) is one invocation
    ConsumerOptions(queue_url=QUEUE_URL, batch_size=10, retry=ExponentialBackoff(initial=1)),
)


def main() -> None:
    sqs = MemorySQS.shared()
    for n in range(COUNT):
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"order": n}))
    consumer.start()
    stats = consumer.stats()
    print(f"processed={processed}")
    print(f"succeeded={stats.succeeded} failed={stats.failed} deleted={stats.deleted}")
    assert processed[3] == 2 and len(processed) == COUNT and stats.deleted == COUNT


if __name__ == "__main__":
    main()
