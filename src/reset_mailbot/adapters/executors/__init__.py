"""Reset executors: the things that actually reset 2FA (HTTP endpoint, Forus database, a human)."""
