"""The imperative shell around the decision core: inbox processing, delivery, the daemon.

- `inbox`: one message at a time: decide (pure core) -> record in one transaction -> MOVE.
- `delivery`: drives queued replies (SMTP) and execution intents (executors) to a final state.
- `daemon`: APScheduler jobs, IMAP IDLE, signals, and `run --once`.
"""
