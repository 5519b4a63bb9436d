"""Handler models: the batch contract, the router, the Lambda adapter and the middleware.

Their public names are imported from `sqs_consumer` (and `sqs_consumer.middleware`), not from
here; see docs/architecture.md.
"""
