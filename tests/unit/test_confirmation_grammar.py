"""The allowlist grammar (rules/grammar.yaml) under attack: a metamorphic generator.

Every affirmative form in the grammar is built into a plain sentence (the first phrase of every
class it needs); each must confirm its item - recall is measured too. Then every form is
combined with every modifier class the attackers used (issue #12): a hedge, negation, hearsay
or condition word at every position, a question, someone else's identity, a retraction or a
failure in the next sentence, reported speech, an invisible character or a homoglyph in a word,
a German quote header above it, non-plain template answers. Not one variant may confirm.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from reset_mailbot.domain.extraction import ExtractionRules, extract_text
from reset_mailbot.domain.extraction.grammar import BUILTINS, Form, Grammar, judge_sentence
from reset_mailbot.rules_loader import load_extraction_rules, packaged_rules_dir

ITEMS = ("identity_verified", "reset_instructed")
FILLERS = {"NAME": "Jansen", "EMAIL": "piet.jansen@example.nl", "NUMBER": "88123",
           "DATE": "12-11-2026"}


@cache
def rules() -> ExtractionRules:
    folder = os.environ.get("RESET_MAILBOT_RULES_DIR")
    return load_extraction_rules(Path(folder) if folder else packaged_rules_dir())


@cache
def grammar() -> Grammar:
    compiled = rules().compiled_grammar
    assert compiled is not None, "rules/grammar.yaml is required"
    return compiled


def _expand(g: Grammar, name: str, depth: int = 0) -> list[str]:
    """The words of the first phrase of class `name` (its simplest member)."""
    if name in BUILTINS:
        return [FILLERS[name]]
    phrase = g.classes[name][0]
    words: list[str] = []
    for word in phrase:
        if word.startswith("<") and depth < 8:
            words += _expand(g, word[1:-1], depth + 1)
        else:
            words.append(word)
    return words


def sentence_for(g: Grammar, form: Form) -> str:
    words: list[str] = []
    for slot in form.slots:
        if slot.low:
            words += _expand(g, slot.name)
    text = " ".join(words)
    return text[:1].upper() + text[1:] + ("" if text.endswith("?") else ".")


def forms() -> list[Form]:
    return [f for f in grammar().forms if f.item in ITEMS]


def test_every_form_confirms_its_item_as_written() -> None:
    """Recall of the grammar itself: each form, built plainly, confirms (and only its item)."""
    failures = []
    for form in forms():
        text = sentence_for(grammar(), form)
        verdict = judge_sentence(grammar(), text)
        if form.item not in verdict.items:
            failures.append((form.name, text, verdict.stopped_at))
    assert not failures, failures
    assert len(forms()) >= 30


HEDGES = {
    "nl": ["hopelijk", "waarschijnlijk", "misschien", "niet", "nog niet", "volgens haar",
           "denk ik", "zogenaamd", "eventueel", "later", "morgen", "nooit", "geen", "zou",
           "moet", "mogelijk", "vermoedelijk", "nagenoeg", "bijna", "deels", "wellicht",
           "blijkbaar", "kennelijk", "zogezegd", "nauwelijks", "destijds", "toen", "vroeger",
           "eigenlijk niet", "onvoldoende"],
    "en": ["hopefully", "probably", "maybe", "not", "not yet", "apparently", "reportedly",
           "I think", "allegedly", "tomorrow", "never", "partly", "almost", "would", "should",
           "might", "possibly", "supposedly", "no", "later", "perhaps", "seemingly",
           "presumably", "hardly", "barely", "previously", "back then", "sort of", "kind of",
           "insufficiently"],
}
OTHER_PERSON = {"nl": ["van haar zoon", "van zijn dochter", "van haar partner", "van de buurman"],
                "en": ["of her son", "of his daughter", "of her partner", "of the neighbour"]}
NEXT_SENTENCE = {
    "nl": ["Wacht hier nog even mee.", "Toch niet, sorry.", "Dit was bij de vorige aanvraag.",
           "Graag pas na akkoord van de teamleider.", "Als dat klopt tenminste.",
           "Helaas klopte het niet.", "Maar alleen een kopie."],
    "en": ["Please hold off for now.", "This was at her previous visit.",
           "Only once my manager agrees.", "If that is correct, that is.",
           "Unfortunately it did not match.", "But only a copy."],
}
# a failed check, said right after a confirmation: takes the identity back; after a reset
# instruction it is about the identity (which it leaves unconfirmed), not about the instruction
FAILED_CHECK = {
    "nl": ["Helaas bleek het paspoort verlopen.", "Maar de foto leek niet op haar.",
           "Helaas klopte de foto niet, dus graag nog geen reset.",
           "Maar haar identiteit konden we niet controleren.",
           "Niet resetten, het was de verkeerde persoon."],
    "en": ["Unfortunately the passport turned out to be expired.",
           "But the photo did not match.", "But the photo did not match, so no reset yet.",
           "But we could not verify her identity.", "Do not reset, it was the wrong person."],
}
# the check is of the applicant, but the account is someone else's, said in another sentence
ELSEWHERE_PERSON = {
    "nl": ["Het account staat op naam van haar ex-partner.",
           "Het gaat om het account van haar zoon.", "Zij vraagt het voor haar moeder."],
    "en": ["The account is in her ex-husband's name.", "It is her sister's account.",
           "She is asking on behalf of her father."],
}
PREFIXES = {
    "nl": ["Mevrouw schreef ons: '", "Volgens de inwoner: ", "Als het goed is: ",
           "Op voorwaarde dat ze langskomt: ", "Onder voorbehoud: ", "Moeten we zeggen: ",
           "Mijn collega vraagt of ", "Zodra ze langskomt: "],
    "en": ["She wrote to us: '", "According to the resident: ", "If all goes well: ",
           "Provided she comes by: ", "Subject to approval: ", "My colleague asks whether ",
           "Once she comes in: "],
}
GERMAN_QUOTE = ("Danke.\n\nVon: Kees Kwaad <kees@example.com>\nGesendet: Montag, 7. Dezember 2026"
                " 09:12\nAn: support@forus.test\nBetreff: AW: 2FA\n\n")


def _language(form: Form) -> str:
    return form.language


def _words(text: str) -> list[str]:
    return text.rstrip(".?").split(" ")


def variants() -> Iterator[tuple[str, str, str]]:
    """(form name, modifier class, text) for every form x modifier."""
    for form in forms():
        base = sentence_for(grammar(), form)
        lang = _language(form)
        words = _words(base)
        end = "?" if base.endswith("?") else "."
        for hedge in HEDGES[lang]:
            for pos in range(len(words) + 1):
                text = " ".join([*words[:pos], hedge, *words[pos:]]) + end
                yield form.name, "hedge", text
        yield form.name, "question", base.rstrip(".?") + "?"
        for person in OTHER_PERSON[lang]:
            for pos in range(1, len(words) + 1):
                yield form.name, "other person", " ".join(
                    [*words[:pos], person, *words[pos:]]) + end
        for after in NEXT_SENTENCE[lang]:
            yield form.name, "next sentence", f"{base} {after}"
        if form.item == "identity_verified":
            for after in FAILED_CHECK[lang]:
                yield form.name, "next sentence", f"{base} {after}"
        if form.item == "identity_verified":
            for other in ELSEWHERE_PERSON[lang]:
                yield form.name, "someone else's account", f"{other} {base}"
                yield form.name, "someone else's account", f"{base}\n\n{other}"
        for prefix in PREFIXES[lang]:
            closing = "'" if prefix.endswith("'") else ""
            yield form.name, "reported or conditional", f"{prefix}{base}{closing}"
        for pos, word in enumerate(words):
            if len(word) < 3 or not word.isalpha():
                continue
            middle = len(word) // 2
            for mark in ("\u200b", "\u00ad", "\u2060", "\ufeff"):
                hidden = word[:middle] + mark + word[middle:]
                yield form.name, "invisible character", " ".join(
                    [*words[:pos], hidden, *words[pos + 1:]]) + end
            for latin, cyrillic in (("e", "\u0435"), ("o", "\u043e"), ("a", "\u0430"),
                                    ("i", "\u0456"), ("c", "\u0441"), ("p", "\u0440")):
                if latin in word:
                    swapped = word.replace(latin, cyrillic, 1)
                    yield form.name, "homoglyph", " ".join(
                        [*words[:pos], swapped, *words[pos + 1:]]) + end
        yield form.name, "german quote header", GERMAN_QUOTE + base


def _confirms(item: str, text: str) -> bool:
    request = extract_text(text, rules(), frozenset())
    return bool(getattr(request, item))


def test_the_generator_is_big_enough() -> None:
    assert sum(1 for _ in variants()) >= 10_000


def test_no_modified_form_confirms() -> None:
    """Sentences go through judge_sentence (fast); variants of two sentences or a quote header
    go through the whole extraction (cutting quotes, templates, vetoes)."""
    items = {f.name: f.item for f in forms()}
    confirmed = []
    count = 0
    for name, kind, text in variants():
        count += 1
        item = items[name]
        if kind in {"next sentence", "german quote header", "someone else's account"}:
            if _confirms(item, text):
                confirmed.append((name, kind, text))
        elif kind == "question" and item == "reset_instructed":
            continue  # a polite question IS the instruction ("Kunnen jullie ...?")
        elif item in judge_sentence(grammar(), text).items:
            confirmed.append((name, kind, text))
    assert count >= 10_000
    assert not confirmed, f"{len(confirmed)} of {count} variants confirmed: {confirmed[:20]}"


@pytest.mark.parametrize("answer", ["ja?", "ja, hopelijk", "ja volgens de inwoner", "ja (denk ik)",
                                    "ja, maar nog niet gecontroleerd", "yes I think so",
                                    "ja, door haar zoon", "nee", "ja/nee", "misschien"])
def test_template_answer_that_is_not_a_plain_yes_never_confirms(answer: str) -> None:
    text = f"Identiteit gecontroleerd: {answer}\nGemeente geeft opdracht tot reset: {answer}\n"
    request = extract_text(text, rules(), frozenset())
    assert not request.identity_verified
    assert not request.reset_instructed


@pytest.mark.parametrize("answer", ["ja", "Ja.", "yes", "akkoord", "\u2714"])
def test_plain_template_yes_confirms(answer: str) -> None:
    text = f"Identiteit gecontroleerd: {answer}\nGemeente geeft opdracht tot reset: {answer}\n"
    request = extract_text(text, rules(), frozenset())
    assert request.identity_verified and request.reset_instructed


def test_the_reply_can_name_the_word_that_stopped_it() -> None:
    request = extract_text("De identiteit is hopelijk gecontroleerd.\n", rules(), frozenset())
    assert not request.identity_verified
    assert request.stopped_at.get("identity_verified") == "hopelijk"  # type: ignore[call-overload]


def test_evidence_names_the_form_that_matched() -> None:
    """Like Mailman's rule hits: the decision says which rules/grammar.yaml form confirmed."""
    text = "De identiteit van de inwoner is gecontroleerd.\nGraag de 2FA resetten.\n"
    request = extract_text(text, rules(), frozenset())
    rules_hit = {e.item.value: e.rule for e in request.evidence}
    assert rules_hit == {"identity_verified": "nl:passive", "reset_instructed": "nl:please"}


@pytest.mark.parametrize(("text", "confirmed"), [
    ("De identiteit van de heer R. Koster is gecontroleerd met zijn paspoort.", True),
    ("De identiteit van mevrouw J.P. de Vries is gecontroleerd.", True),
    ("Ik heb haar identiteit gecontroleerd met haar paspoort. Dank je wel!", True),
    ("Ik heb haar identiteit gecontroleerd met haar paspoort. Helaas wel verlopen!", False),
    ("Ik heb haar identiteit gecontroleerd met haar paspoort. Wel verlopen, dank je wel!", False),
])
def test_initials_and_a_wholly_neutral_next_sentence(text: str, confirmed: bool) -> None:
    """Initials belong to a name; a next sentence that the grammar wholly explains as neutral
    ("Dank je wel!") takes nothing back, one with any other word still does."""
    assert extract_text(text, rules(), frozenset()).identity_verified is confirmed


@pytest.mark.parametrize(("after", "instruction_stands"), [
    ("Helaas bleek het paspoort verlopen.", True),
    ("Maar haar identiteit konden we niet controleren.", True),
    ("Unfortunately the passport turned out to be expired.", True),
    ("But we could not verify her identity.", True),
    # no word that names the identity outright: it may go on about the instruction
    ("Maar de foto leek niet op haar.", False),
    ("But the photo did not match.", False),
])
def test_a_failed_check_after_an_instruction_is_about_the_identity(
    after: str, instruction_stands: bool
) -> None:
    """"Graag de 2FA resetten. Helaas bleek het paspoort verlopen.": the instruction stands,
    the identity is not confirmed; the reply asks for the identity, not for the instruction."""
    text = f"Graag de 2FA resetten. {after}"
    request = extract_text(text, rules(), frozenset())
    assert request.reset_instructed is instruction_stands
    assert not request.identity_verified


def test_a_failed_check_that_also_names_the_reset_takes_both_back() -> None:
    text = ("Ik heb haar paspoort gecontroleerd. "
            "Helaas klopte de foto niet, dus graag nog geen reset.")
    request = extract_text(text, rules(), frozenset())
    assert not request.identity_verified and not request.reset_instructed


@pytest.mark.parametrize(("text", "identity"), [
    ("We verified her identity with her passport at our counter today.\n"
     "Please do not reset the 2FA yet; we will confirm once she has her new phone.", True),
    ("Identiteit gecontroleerd: ja (paspoort)\n\n"
     "Graag de 2FA NIET resetten voordat wij dat bevestigen.", True),
    # the retraction names the reset, but what follows doubts the identity: both taken back
    ("Ik heb haar identiteit gecontroleerd met haar paspoort. "
     "Niet resetten, het was de verkeerde persoon.", False),
    ("I verified her identity with her passport. Do not reset, it was the wrong person.", False),
    # a retraction that names no item withdraws the whole request
    ("Ik heb haar identiteit gecontroleerd met haar paspoort. Wacht hier nog even mee.", False),
])
def test_a_retraction_that_names_the_reset_takes_back_the_instruction(
    text: str, identity: bool
) -> None:
    request = extract_text(text, rules(), frozenset())
    assert not request.reset_instructed
    assert request.identity_verified is identity


@pytest.mark.parametrize("text", [
    "Graag de 2FA resetten van het account jan.vos[at]gmail.com, identiteit van meneer is "
    "gecontroleerd met zijn rijbewijs.",
    "Please reset the 2FA for the account peter (at) gmail (dot) com. "
    "We verified his identity at the desk today.",
])
def test_an_obfuscated_address_explains_words_but_is_never_the_account(text: str) -> None:
    request = extract_text(text, rules(), frozenset())
    assert request.identity_verified and request.reset_instructed
    assert request.account_email is None


def test_an_earlier_digid_check_confirms_nothing_but_a_current_check_beside_it_does() -> None:
    earlier = ("The resident's identity was established via DigiD when she applied for the "
               "scheme")
    assert not extract_text(f"{earlier}.", rules(), frozenset()).identity_verified
    both = f"{earlier}, and we also checked her ID card at our office today."
    assert extract_text(both, rules(), frozenset()).identity_verified


def test_the_first_word_indexes_do_not_grow_with_input() -> None:
    """The matcher looks phrases and forms up by their first word; the indexes are built from
    the grammar alone, so a daemon reading endless new words keeps the same memory."""
    g = grammar()
    judge_sentence(g, "De identiteit is gecontroleerd.")
    sizes = (len(g.__dict__["_index"]), len(g.__dict__["_sentence_forms"][0]))
    for n in range(2_000):
        judge_sentence(g, f"woord{n} is gecontroleerd door xyz{n}.")
    assert len(g.__dict__["_index"]) <= len(g.classes)
    assert len(g.__dict__["_sentence_forms"][0]) == sizes[1]


def test_skipping_forms_that_cannot_match_changes_no_verdict() -> None:
    """The matcher skips a form when a required slot's words are all absent; over every
    unmodified form and a slice of every modifier, the verdicts are those of the full run."""
    g = grammar()
    texts = [sentence_for(g, form) for form in forms()]
    texts += [text for i, (_, _, text) in enumerate(variants()) if i % 7 == 0]
    for text in texts:
        fast, full = judge_sentence(g, text), judge_sentence(g, text, full=True)
        assert (fast.items, fast.explained) == (full.items, full.explained), text
