"""Reading the request out of the sender's own new text (policy, "Required items"; issue #3).

The pipeline, one small module per step:
  body.py          choose text/plain or HTML, decode charsets (html_text.py converts HTML)
  quotes.py        cut quoted/forwarded history, split off signature and disclaimer
  templates.py     "Identiteit gecontroleerd: ja" lines
  sentences.py     sentences of the remaining text
  confirmations.py identity_verified / reset_instructed per sentence, refusing negated,
                   conditional, future and (for identity) question forms
  account.py       the account e-mail address (labelled wins, never guess between two)
  reference.py     the optional case reference
Rules are data (rules/phrases.*.yaml, rules/extraction.yaml), compiled once in rules.py.
Pure: no I/O, and nothing here raises on any input.
"""

from __future__ import annotations

from reset_mailbot.domain.extraction.account import AccountFinding, account_email
from reset_mailbot.domain.extraction.allowlist import read_confirmations
from reset_mailbot.domain.extraction.body import rendered_bodies
from reset_mailbot.domain.extraction.confirmations import identity_verified, reset_instructed
from reset_mailbot.domain.extraction.grammar import SentenceVerdict
from reset_mailbot.domain.extraction.quotes import Sender, segments
from reset_mailbot.domain.extraction.reference import case_reference
from reset_mailbot.domain.extraction.rules import ExtractionRules
from reset_mailbot.domain.extraction.sentences import sentences
from reset_mailbot.domain.extraction.templates import template_answers
from reset_mailbot.domain.message import ParsedMessage
from reset_mailbot.domain.models import Evidence, ResetRequest
from reset_mailbot.domain.reasons import Item, MissingDetail

__all__ = ["ExtractionRules", "extract_request", "extract_text"]

# The sender's new text is at the top; nothing a person types in a request comes near this, and
# the cap bounds the work a hostile body can cause.
MAX_TEXT_CHARS = 64_000


def extract_text(
    text: str,
    rules: ExtractionRules,
    excluded_addresses: frozenset[str],
    sender: Sender | None = None,
    doubtful_addresses: frozenset[str] = frozenset(),
    judged: dict[str, SentenceVerdict] | None = None,
) -> ResetRequest:
    """Extract the request items from a body that is already text (quotes not yet cut);
    `judged` shares sentence verdicts between the renderings of one message."""
    compiled = rules.compiled
    parts = segments(text[:MAX_TEXT_CHARS], compiled, sender)
    answers, template_lines = template_answers(parts.body, compiled)
    units = sentences(parts.body, template_lines)

    evidence: list[Evidence] = []
    details: dict[Item, MissingDetail] = {}

    grammar = rules.compiled_grammar
    account = account_email(
        parts.body, parts.signature, excluded_addresses, compiled, doubtful_addresses,
        grammar.account_doubt | grammar.other_person if grammar is not None else frozenset(),
        grammar.account_context if grammar is not None else frozenset(),
        grammar.account_correction if grammar is not None else frozenset(),
        grammar.other_address if grammar is not None else None,
    )
    if account.address is not None and account.evidence is not None:
        evidence.append(Evidence(item=Item.ACCOUNT_EMAIL, text=account.evidence, kind=account.kind))
    elif account.detail is not None:
        details[Item.ACCOUNT_EMAIL] = account.detail

    if grammar is not None:
        found = read_confirmations(units, answers, grammar, judged)
        identity, instruction = found[Item.IDENTITY_VERIFIED], found[Item.RESET_INSTRUCTED]
    else:  # rule sets without rules/grammar.yaml (tests of the older phrase reader)
        identity = identity_verified(units, answers, compiled)
        instruction = reset_instructed(units, answers, compiled)
    stopped: dict[Item, str] = {}
    if identity.detail is MissingDetail.RETRACTED and account.address is not None:
        # the message takes the request back: nothing of it is kept, the address neither
        account = AccountFinding(None, detail=MissingDetail.RETRACTED)
        evidence = [e for e in evidence if e.item is not Item.ACCOUNT_EMAIL]
        details[Item.ACCOUNT_EMAIL] = MissingDetail.RETRACTED
    for item, finding in ((Item.IDENTITY_VERIFIED, identity), (Item.RESET_INSTRUCTED, instruction)):
        if finding.confirmed and finding.evidence is not None:
            evidence.append(Evidence(item=item, text=finding.evidence, kind=finding.kind,
                                     rule=finding.rule))
        else:
            if finding.detail is not None:
                details[item] = finding.detail
            if finding.stopped_at:
                stopped[item] = finding.stopped_at

    reference = case_reference(parts.body, compiled)
    return ResetRequest(
        account_email=account.address,
        identity_verified=identity.confirmed,
        reset_instructed=instruction.confirmed,
        case_reference=reference[0] if reference else None,
        evidence=evidence,
        missing_details=details,
        stopped_at=stopped,
    )


def both_renderings(plain: ResetRequest, html: ResetRequest) -> ResetRequest:
    """What the text/plain and the HTML rendering of one message both say (issue #12): a
    confirmation only if both give it, the account only if both name the same one."""
    if plain.account_email != html.account_email:
        account, account_detail = None, MissingDetail.AMBIGUOUS
    else:
        account, account_detail = plain.account_email, None
    details = {**html.missing_details, **plain.missing_details}
    stopped = {**html.stopped_at, **plain.stopped_at}
    if account_detail is not None and (plain.account_email or html.account_email):
        details[Item.ACCOUNT_EMAIL] = account_detail
    confirmed = {
        Item.IDENTITY_VERIFIED: plain.identity_verified and html.identity_verified,
        Item.RESET_INSTRUCTED: plain.reset_instructed and html.reset_instructed,
    }
    evidence = [e for e in plain.evidence
                if (e.item is Item.ACCOUNT_EMAIL and account is not None)
                or confirmed.get(e.item, False)]
    for item, ok in confirmed.items():
        if ok:
            details.pop(item, None)
            stopped.pop(item, None)
    return ResetRequest(
        account_email=account,
        identity_verified=confirmed[Item.IDENTITY_VERIFIED],
        reset_instructed=confirmed[Item.RESET_INSTRUCTED],
        case_reference=plain.case_reference or html.case_reference,
        evidence=evidence,
        missing_details={k: v for k, v in details.items()
                         if k is not Item.ACCOUNT_EMAIL or account is None},
        stopped_at=stopped,
    )


def extract_request(
    message: ParsedMessage,
    rules: ExtractionRules,
    excluded_addresses: frozenset[str],
    doubtful_addresses: frozenset[str] = frozenset(),
) -> ResetRequest:
    """Extract the request items from `message`.

    `excluded_addresses` (normalised) are never account candidates: the sender, To/Cc
    recipients and our own support address; `doubtful_addresses` (recipients only an unsigned
    To/Cc names) make the account ambiguous when they appear as a candidate. Never raises:
    unreadable input extracts nothing.
    """
    if not rules.phrases or rules.layout is None:
        return ResetRequest()
    try:
        bodies = rendered_bodies(message.message, rules.compiled.plain_stub)
        mailbox = message.from_mailbox
        sender = Sender(mailbox.address, mailbox.display_name) if mailbox else None
        judged: dict[str, SentenceVerdict] = {}
        found = [extract_text(b.text, rules, excluded_addresses, sender, doubtful_addresses,
                              judged) for b in bodies]
        return found[0] if len(found) == 1 else both_renderings(found[0], found[1])
    except Exception:  # a bug must cost a polite "incomplete" reply, never a false confirmation
        return ResetRequest()
