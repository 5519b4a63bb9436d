"""What the consumer shows of itself: OpenTelemetry spans and metrics, `/healthz` and `/stats`.

The public surface is on the wire (docs/observability.md); no public Python names here.
"""
