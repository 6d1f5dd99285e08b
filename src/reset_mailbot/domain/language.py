"""Which language to answer in: Dutch by default, English when the request was English.

A stop-word count over the sender's own new text is enough here: only two candidates, and a
wrong guess costs a reply in the other language, never a wrong decision. Quoted history is
left out on purpose (it is usually our own Dutch reply, or someone else's words), and so is the
signature (an English disclaimer under a Dutch request). Pure: no I/O, never raises.
"""

from __future__ import annotations

import re
from typing import Literal

from reset_mailbot.domain.extraction.body import body_text
from reset_mailbot.domain.extraction.quotes import Sender, segments
from reset_mailbot.domain.extraction.rules import ExtractionRules
from reset_mailbot.domain.message import ParsedMessage

Language = Literal["nl", "en"]


def _words(*rows: str) -> frozenset[str]:
    return frozenset(word for row in rows for word in row.split())


# Frequent function words and the words requests are made of. Words both languages use ("in",
# "is", "we", "of", "me", "had", "kind", "mail", "account", "reset") are left out: they decide
# nothing.
_DUTCH = _words(
    "de het een en van ik je jij wij u uw dat die deze dit niet met voor op aan er zijn bij ook",
    "naar om te graag kunnen kun kunt jullie onze ons mijn wil wilt willen wordt worden heeft",
    "hebben heb maar nog als hoe wat wel geen zou zouden alvast bedankt dank groet vriendelijke",
    "groeten beste hierbij inwoner inwoonster gemeente identiteit gecontroleerd opdracht",
    "verzoek herstellen resetten gegevens mailadres bericht hallo goedemorgen goedemiddag",
)
_ENGLISH = _words(
    "the a an and to i you are be been has have this that these with for on at from not",
    "please could can would will our your my it its thanks thank regards dear hereby",
    "resident municipality identity verified checked confirm confirmed instructs instruct",
    "request requested address hello morning afternoon best wishes sincerely",
)
_WORD_RE = re.compile(r"[a-zà-ÿ]+(?:'[a-z]+)?")
_MIN_ENGLISH = 3  # fewer English words than this is "unsure": Dutch
_MIN_OWN_WORDS = 5  # new text shorter than this says too little; look at the unquoted body
_MAX_TEXT = 20_000  # the first part decides; bounds the work on a hostile body


def guess_language(text: str) -> Language:
    """English ("en") when English words clearly outnumber Dutch ones, else Dutch ("nl")."""
    dutch = english = 0
    for word in _WORD_RE.findall(text[:_MAX_TEXT].lower()):
        if word in _DUTCH:
            dutch += 1
        elif word in _ENGLISH:
            english += 1
    if english >= _MIN_ENGLISH and english > 2 * dutch:
        return "en"
    return "nl"


def message_language(message: ParsedMessage, rules: ExtractionRules) -> Language:
    """The language of a message's own new text (body selection and quote/signature cutting as
    the extraction does them); Dutch on any doubt.
    """
    if not rules.phrases or rules.layout is None:
        return "nl"
    try:
        compiled = rules.compiled
        body = body_text(message.message, compiled.plain_stub)
        mailbox = message.from_mailbox
        sender = Sender(mailbox.address, mailbox.display_name) if mailbox else None
        parts = segments(body.text[:_MAX_TEXT], compiled, sender)
        own = "\n".join(parts.body)
        if len(_WORD_RE.findall(own.lower())) < _MIN_OWN_WORDS:
            # bottom-posting or a cut gone wrong: the body without ">"-quoted lines
            own = "\n".join(
                line for line in body.text.splitlines() if not line.lstrip().startswith(">")
            )
        return guess_language(own)
    except Exception:  # a guess must never break processing
        return "nl"
