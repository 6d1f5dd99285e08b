"""DKIM key lookup over DNS with dnspython, honouring the [dns] settings.

dkimpy's own lookup cannot be pointed at a nameserver or port and turns timeouts and SERVFAIL
into a plain failure; ours raises TemporaryKeyLookupError for those, so the decision can defer
instead of rejecting a real request because of a passing DNS fault. NXDOMAIN and "no TXT record"
are answers (the key does not exist) and give None. UDP answers that come back truncated are
retried over TCP (a 4096-bit key does not fit in 512 bytes).

Answers are cached for their TTL (dnspython's LRUCache), as any resolver would: a backlog from
the same few municipalities then costs one lookup per selector, not one per message. A key
removed from DNS therefore stops verifying after its TTL, exactly as behind a caching resolver;
failures (timeout, SERVFAIL) are never cached.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from reset_mailbot.domain.authentication import KeyLookup, TemporaryKeyLookupError

CACHE_SIZE = 1024  # selectors; every municipality has one or two


def make_key_lookup(
    nameservers: list[str] | None = None, port: int = 53, timeout: float = 5.0
) -> KeyLookup:
    """A KeyLookup using the given nameservers (empty: the system resolver configuration)."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(nameservers)
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.use_edns(0, 0, 1232)
    resolver.retry_servfail = False
    resolver.cache = dns.resolver.LRUCache(CACHE_SIZE)

    def lookup(name: str) -> bytes | None:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return None  # s=/d= that can never be a DNS name (label too long, empty): no key
        try:
            answer = resolver.resolve(qname, "TXT", tcp=False, raise_on_no_answer=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.resolver.LifetimeTimeout as exc:
            raise TemporaryKeyLookupError(f"timeout after {timeout}s") from exc
        except dns.resolver.NoNameservers as exc:
            raise TemporaryKeyLookupError("SERVFAIL or no nameserver answered") from exc
        except dns.exception.DNSException as exc:
            raise TemporaryKeyLookupError(f"{type(exc).__name__}") from exc
        except OSError as exc:
            raise TemporaryKeyLookupError(f"network error: {exc}") from exc
        records = [b"".join(rdata.strings) for rdata in answer]
        keys = [r for r in records if b"p=" in r]
        if not keys:
            return None
        # RFC 6376 3.6.2.2: several key records is a misconfiguration; use the first that parses
        return keys[0]

    return lookup
