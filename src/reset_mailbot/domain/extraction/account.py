"""The account e-mail address (issue #3, item 4; policy clarifications).

Candidates come from the sender's new text, mailto: targets included. The sender, the To/Cc
recipients, our support address and every address in the signature never count. A labelled
candidate ("E-mailadres account: x") wins; two distinct labelled, or (without a label) two
distinct unlabelled candidates are ambiguous: we never guess. Obfuscated forms ("x[at]y") are not
addresses.

Addresses are found by scanning outwards from each "@" with bounded loops instead of a regex, so
a hostile megabyte without an "@" (or full of them) costs linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from email_validator import EmailNotValidError, validate_email

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address
from reset_mailbot.domain.extraction.grammar import possessive_base, suspicious, tokens
from reset_mailbot.domain.extraction.rules import CompiledRules, fold
from reset_mailbot.domain.reasons import MissingDetail

# bounded scans outwards from an "@": linear whatever the input
_LOCAL_TAIL = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+$")
_DOMAIN_HEAD = re.compile(r"[\w.-]+")
_MAX_LOCAL = 64
_MAX_DOMAIN = 253
_MAX_AT_PER_TEXT = 200


@dataclass(frozen=True)
class Occurrence:
    address: str  # as written
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class AccountFinding:
    address: str | None
    evidence: str | None = None
    kind: str = "sentence"  # label | sentence | mailto
    detail: MissingDetail | None = None


_GLUE = "|/=?\"'`{}"  # never part of an address as people write one (issue #12, item 6)
_URL_GLUE = "=?"
_UNGLUE = str.maketrans(_GLUE, " " * len(_GLUE))


def _whole_token(line: str, at: int, local: str) -> tuple[str, bool]:
    """The local part as a whole token, and whether the address sits inside a URL.

    Characters that glue an address to a word, a quote or a URL ("e-mailadres|x@y", "'x@y'",
    "...?email=x@y") are cut off; an address after "=" or "?", or in a chunk holding "://" or
    "www.", is part of a link and never a candidate."""
    cut = max(local.rfind(ch) for ch in _GLUE)
    glued = local[cut] if cut >= 0 else ""
    local = local[cut + 1 :].lstrip(".")
    begin = line.rfind(" ", 0, at) + 1
    chunk = line[begin:at].lower()
    inside_url = (glued in _URL_GLUE and glued != "") or "://" in chunk or chunk.startswith("www.")
    return local, inside_url


def find_addresses(lines: list[str]) -> list[Occurrence]:
    """Every address-shaped text in `lines` (not yet validated)."""
    found: list[Occurrence] = []
    budget = _MAX_AT_PER_TEXT
    for n, line in enumerate(lines):
        at = line.find("@")
        while at != -1 and budget > 0:
            budget -= 1
            left = _LOCAL_TAIL.search(line, max(0, at - _MAX_LOCAL), at)
            right = _DOMAIN_HEAD.match(line, at + 1, at + 1 + _MAX_DOMAIN)
            local = left.group().lstrip(".") if left else ""
            domain = right.group().rstrip(".-") if right else ""
            local, inside_url = _whole_token(line, at, local)
            if local and "." in domain and not inside_url:
                start = at - len(local)
                found.append(Occurrence(f"{local}@{domain}", n, start, at + 1 + len(domain)))
            at = line.find("@", at + 1 + (len(right.group()) if right else 0))
    return found


@lru_cache(maxsize=4096)
def canonical(address: str) -> tuple[str, str] | None:
    """(address as email-validator normalises it, lower case; comparison key with an A-label
    domain), or None if not valid. An IDN domain is kept readable (U-label) in the result.

    Cached: the same addresses come back in message after message.
    """
    try:
        valid = validate_email(address, check_deliverability=False)
        return valid.normalized.lower(), normalise_address(valid.normalized)
    except (EmailNotValidError, InvalidAddress):
        return None
    except Exception:  # email-validator on hostile input: not an address
        return None


def _labelled(lines: list[str], occ: Occurrence, rules: CompiledRules) -> bool:
    if rules.account_label is None:
        return False
    prefix = fold(lines[occ.line][: occ.start].strip())[-200:]
    if prefix:
        return bool(rules.account_label.search(prefix))
    for j in range(occ.line - 1, max(-1, occ.line - 3), -1):  # label on the line above
        above = fold(lines[j].strip())[-200:]
        if above:
            return bool(rules.account_label.search(above))
    return False


def _kind(lines: list[str], occ: Occurrence, labelled: bool) -> str:
    if labelled:
        return "label"
    return "mailto" if lines[occ.line][: occ.start].lower().endswith("mailto:") else "sentence"


def _doubted(line: str, address: str, doubt_words: frozenset[str]) -> bool:
    """A doubt word just before the address or just after it ("NIET het account x", "x is
    niet het account", "het oude adres x"): four words before, three after."""
    words = tokens(line)
    at = next((i for i, t in enumerate(words) if t.text.lower() == address.lower()), None)
    if at is None:
        return any(t.norm in doubt_words for t in words)
    window = words[max(0, at - 4) : at] + words[at + 1 : at + 4]
    return any(possessive_base(t.norm) in doubt_words for t in window)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# a title or a common abbreviation before the full stop: no sentence end ("Ms. Evans (x@y)")
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:mr|mrs|ms|dr|drs|ir|mw|mevr|dhr|hr|jr|sr|st|nr|tel|bijv|ca|e\.g|i\.e|o\.a)\.$",
    re.IGNORECASE)


def _sentence_around(lines: list[str], occ: Occurrence) -> tuple[str, str]:
    """(the sentence before, the sentence holding the address): the address's line joined to
    the line before (plain text is often wrapped inside a sentence), cut at sentence ends that
    are not an abbreviation."""
    before = lines[occ.line - 1] + " " if occ.line > 0 else ""
    text = before + lines[occ.line]
    at = len(before) + occ.start
    previous, start, end = 0, 0, len(text)
    for m in _SENTENCE_END.finditer(text):
        if _ABBREVIATION.search(text, 0, m.start()):
            continue
        if m.end() <= at:
            previous, start = start, m.end()
        elif m.start() >= at:
            end = m.start()
            break
    return text[previous:start], text[start:end]


_SHORT = 4  # "It's x.", "Dat is x.", "Adres: x": a sentence this short goes on the one before


def _about_an_account(lines: list[str], occ: Occurrence, context: frozenset[str]) -> bool:
    """Does the sentence of an unlabelled address speak of an account, a login, the reset or
    the resident? An address in "contact my colleague x@y" is not a request's account
    (allowlist: an address counts only where something explains it). A very short sentence
    ("It's x.") is read with the sentence before it."""
    if not context:
        return True
    previous, sentence = _sentence_around(lines, occ)
    words = tokens(sentence.translate(_UNGLUE))
    if sum(1 for t in words if any(c.isalnum() for c in t.norm)) <= _SHORT:
        words += tokens(previous.translate(_UNGLUE))
    return any(t.norm in context for t in words)


# what may stand between two addresses offered as alternatives ("x of y", "x or y", "x / y",
# "either x\nor y"); Outlook's "<mailto:x>" and brackets are read past
_ALTERNATIVE = frozenset({"of", "or", "/", "en/of", "and/or", "ofwel", "danwel", "dan", "wel",
                          "either", "anders", "otherwise", "eventueel", "possibly", ",", "(", ")",
                          "<", ">", "-"})
_MAILTO = re.compile(r"<mailto:[^>\s]*>?", re.IGNORECASE)


def _between(body: list[str], a: Occurrence, b: Occurrence) -> str | None:
    if b.line == a.line:
        return body[a.line][a.end : b.start]
    if b.line == a.line + 1:
        return body[a.line][a.end :] + " " + body[b.line][: b.start]
    return None


def _alternatives(body: list[str], seen: list[tuple[Occurrence, str, bool]]) -> bool:
    """Two distinct candidates offered as alternatives ("x of y", "either x\nor y"), or a
    labelled candidate sharing its line with another one ("Account: x, y"): the policy says
    ambiguous, whatever the labels."""
    for (a, addr_a, label_a), (b, addr_b, label_b) in pairwise(seen):
        if addr_a == addr_b:
            continue
        if (label_a or label_b) and a.line == b.line:
            return True
        gap = _between(body, a, b)
        if gap is None:
            continue
        words = [t.norm for t in tokens(_MAILTO.sub(" ", gap))]
        if any(w in ("of", "or", "/", "en/of", "and/or", "ofwel", "danwel") for w in words) and \
                all(w in _ALTERNATIVE for w in words):
            return True
    return False


def _correction(
    body: list[str],
    seen: list[tuple[Occurrence, str, bool]],
    words: frozenset[str],
    labelled: dict[str, AccountFinding],
) -> AccountFinding | None:
    """Two addresses and a correction ("Sorry, typfout! Het juiste adres is y", "Correction: the
    account address is y"): policy v2 says ambiguous, unless the correction itself is labelled
    as the account - then that address. None when there is no correction to settle."""
    if len({addr for _, addr, _ in seen}) < 2 or not words:
        return None
    if not any(t.norm in words for line in body for t in tokens(line)):
        return None
    in_correction = {
        addr for occ, addr, is_labelled in seen
        if is_labelled and any(t.norm in words
                               for t in tokens(_sentence_around(body, occ)[1].translate(_UNGLUE)))
    }
    if len(in_correction) == 1:
        return labelled[next(iter(in_correction))]
    return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)


def _unexplained_other(
    body: list[str],
    seen: list[tuple[Occurrence, str, bool]],
    chosen: set[str],
    words: frozenset[str],
) -> bool:
    """A label wins over another address only when that address's sentence says what else it
    is ("ook nog een ander adres x", "contactadres x", "twee mailadressen: x en y"); an address
    nothing explains ("Nee wacht, het is y") leaves the account ambiguous."""
    for occ, addr, _ in seen:
        if addr in chosen:
            continue
        previous, sentence = _sentence_around(body, occ)
        near = tokens(sentence.translate(_UNGLUE))
        if sum(1 for t in near if any(c.isalnum() for c in t.norm)) <= _SHORT:
            near += tokens(previous.translate(_UNGLUE))
        if not any(t.norm in words for t in near):
            return True
    return False


def account_email(
    body: list[str],
    signature: list[str],
    excluded: frozenset[str],
    rules: CompiledRules,
    doubtful: frozenset[str] = frozenset(),
    doubt_words: frozenset[str] = frozenset(),
    account_context: frozenset[str] = frozenset(),
    correction_words: frozenset[str] = frozenset(),
    other_address_words: frozenset[str] | None = None,
) -> AccountFinding:
    """The one account address of the request, or why there is none.

    `doubtful` addresses are recipients named only by an unsigned To/Cc: whoever added the
    header could have added them to knock a candidate out (issue #11). A candidate among them
    makes the account ambiguous instead of being dropped. A candidate on a line that also holds
    a doubt word ("NIET het account x", "staat waarschijnlijk op x") or that mixes two scripts
    (a Cyrillic "а" in "gmаil") is never the account: it makes the account ambiguous (issue
    #12), as any doubt must cost a question, never a guess."""
    never = set(excluded)
    for occ in find_addresses(signature):
        if occ.address.isascii():  # the normalised form of an ASCII address is its lower case
            never.add(occ.address.lower())
            continue
        try:  # no need to validate what is excluded anyway
            never.add(normalise_address(occ.address))
        except InvalidAddress:
            continue
    labelled: dict[str, AccountFinding] = {}
    unlabelled: dict[str, AccountFinding] = {}
    invalid_labelled = False
    seen: list[tuple[Occurrence, str, bool]] = []  # every valid candidate, explained or not
    for occ in find_addresses(body):
        valid = canonical(occ.address)
        is_labelled = _labelled(body, occ, rules)
        if valid is None:
            invalid_labelled = invalid_labelled or is_labelled
            continue
        addr, key = valid
        if key in never:
            continue
        if key in doubtful or suspicious(occ.address) is not None:
            return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)
        if doubt_words and _doubted(body[occ.line], occ.address, doubt_words):
            return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)
        seen.append((occ, addr, is_labelled))
        if not is_labelled and not _about_an_account(body, occ, account_context):
            continue
        finding = AccountFinding(addr, body[occ.line].strip(), _kind(body, occ, is_labelled))
        target = labelled if is_labelled else unlabelled
        if addr not in target or (finding.kind == "label"):
            target.setdefault(addr, finding)
    if _alternatives(body, seen):
        return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)
    corrected = _correction(body, seen, correction_words, labelled)
    if corrected is not None:
        return corrected
    if labelled and other_address_words is not None and _unexplained_other(
            body, seen, set(labelled), other_address_words):
        return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)
    for addr in labelled:
        unlabelled.pop(addr, None)
    chosen = labelled or unlabelled
    if len(chosen) == 1:
        return next(iter(chosen.values()))
    if len(chosen) > 1:
        return AccountFinding(None, detail=MissingDetail.AMBIGUOUS)
    return AccountFinding(None, detail=MissingDetail.INVALID if invalid_labelled else None)
