"""The only wiring place: builds rules, DNS lookup and adapters from configuration.

Entry points (cli.py) call these builders and hand the results to the core or the service; no
other module reads configuration.
"""

from __future__ import annotations

from reset_mailbot.adapters.dns import make_key_lookup
from reset_mailbot.config import Config
from reset_mailbot.domain.authentication import KeyLookup
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.models import Decision
from reset_mailbot.logs import get_logger
from reset_mailbot.rules_loader import RuleSet, load_rules


def build_rules(config: Config) -> RuleSet:
    settings = config.rules
    return load_rules(settings.dir, settings.municipalities)


def build_key_lookup(config: Config) -> KeyLookup:
    dns = config.dns
    return make_key_lookup(dns.nameservers, dns.port, dns.timeout_seconds)


def build_decision_context(config: Config) -> DecisionContext:
    return DecisionContext(
        rules=build_rules(config),
        key_lookup=build_key_lookup(config),
        support_address=config.mailbox.address,
    )


def log_decision(decision: Decision, **extra: object) -> None:
    """The one structured log line per decided message (README, "Log events")."""
    get_logger().info(
        "decision",
        message_id=decision.message_id,
        message_key=decision.message_key,
        outcome=decision.outcome.value,
        reasons=[r.value for r in decision.reasons],
        missing=[m.value for m in decision.missing],
        reply=decision.reply,
        sender=decision.sender.address,
        municipality=decision.sender.municipality,
        dkim=decision.authentication.dkim.value,
        signing_domain=decision.authentication.signing_domain,
        account_email=decision.request.account_email,
        **extra,
    )
