"""Thin adapters between the pure core and the outside world (DNS, IMAP, SMTP, DB, executors)."""
