"""Real stand-ins for the services reset-mailbot meets (Dovecot, an SMTP server, a DNS server
serving DKIM keys, MariaDB with the Forus tables, the Forus reset endpoint) and a DKIM signer.

Used by the tests, the benchmarks and `reset-mailbot demo`, like `structlog.testing`: the
product package itself never imports it (an import-linter contract checks that), and nothing
here is needed to run the daemon. Needs the dev extras (aiosmtpd, dnslib).
"""
