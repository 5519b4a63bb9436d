"""The engine: every stage between SQS and the handler, private (no public names here).

See docs/architecture.md for the data flow and the file at each stage.
"""
