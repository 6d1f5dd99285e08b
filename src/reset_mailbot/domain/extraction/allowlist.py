"""Identity verified and reset instructed, read by allowlist (issue #12, policy v2).

An item is confirmed by a sentence only when the whole sentence is explained by affirmative
forms of rules/grammar.yaml (grammar.py), or by a template answer that is exactly a yes
("Identiteit gecontroleerd: ja"; "ja, hopelijk" and "ja?" are not). Then, to take it back:
  * a retraction or postponement anywhere in the new text ("wacht hier nog even mee",
    "please hold off") takes back both items: it names none, but withdraws the request; one
    that names the reset ("niet resetten") takes back the instruction only;
  * a sentence about the item (a word of its topic) that is not itself a confirmation and holds
    a doubt word ("Het paspoort bleek verlopen.", "De reset pas na 1 januari.") takes it back;
  * so does a doubt word in the sentence right after a confirmation, which often goes on
    without repeating the subject ("De identiteit is gecontroleerd. Helaas klopte de foto
    niet."), unless that sentence names the other item and no word of this one's topic
    ("De 2FA graag resetten. Helaas hebben we haar ID niet kunnen controleren." is about the
    identity);
  * a word naming another person (a son, an ex-partner, a sister's account) anywhere in the
    new text takes the identity back: the check must be of the account holder;
  * a template "nee" takes it back, and so does a template answer that is not a plain yes but
    holds a doubt word ("ja, volgens haar zoon").
When nothing confirms, the finding says which word stopped the nearest attempt, so the reply
can name it. Pure; never raises on any text.
"""

from __future__ import annotations

from reset_mailbot.domain.extraction.confirmations import Finding
from reset_mailbot.domain.extraction.grammar import (
    Grammar,
    SentenceVerdict,
    doubt_word,
    judge_clause,
    judge_sentence,
    mentions,
    names,
    normalise,
    other_person,
    retraction,
    tokens,
)
from reset_mailbot.domain.extraction.sentences import Sentence
from reset_mailbot.domain.extraction.templates import TemplateAnswer
from reset_mailbot.domain.reasons import Item, MissingDetail


def _plain_yes(answer: TemplateAnswer, grammar: Grammar) -> bool:
    if answer.value is not True:
        return False
    if not answer.answer:  # a ticked box with nothing after the label
        return True
    written = " ".join(t.norm for t in tokens(normalise(answer.answer)))
    if written.rstrip(" .") in grammar.template_yes:
        return True
    return judge_clause(grammar, "template_yes", answer.answer).form is not None


def _template_finding(answers: list[TemplateAnswer], grammar: Grammar) -> Finding | None:
    """A veto from the template lines, or a confirmation, or None."""
    yes: Finding | None = None
    for answer in answers:
        if answer.value is False:
            return Finding(False, answer.line, "template", MissingDetail.TEMPLATE_NO)
        if _plain_yes(answer, grammar):
            yes = yes or Finding(True, answer.line, "template")
            continue
        word = doubt_word(grammar, answer.answer)
        if word is not None:
            return Finding(False, answer.line, "template", MissingDetail.CONTRADICTED,
                           stopped_at=word)
    return yes


def _judge_item(
    item: Item,
    units: list[Sentence],
    verdicts: list[SentenceVerdict],
    answers: list[TemplateAnswer],
    grammar: Grammar,
) -> Finding:
    key = item.value
    confirming = [i for i, v in enumerate(verdicts) if key in v.items]
    template = _template_finding([a for a in answers if a.item is item], grammar)
    if template is not None and not template.confirmed:
        return template
    if item is Item.IDENTITY_VERIFIED:
        # a relative, an ex-partner or a neighbour anywhere in the new text: whose identity was
        # checked, and whose account is it? The check may be of the applicant, the account of
        # someone else (the policy: the resident's own identity, never a relative's).
        for unit in units:
            word = other_person(grammar, unit.text)
            if word is not None:
                return Finding(False, unit.text, detail=MissingDetail.CONTRADICTED,
                               stopped_at=word)
    # a sentence wholly explained by affirmative forms (of either item, or neutral ones such as
    # "Dank je wel!") takes nothing back: it holds no word outside the grammar
    explained = {i for i, v in enumerate(verdicts) if v.explained}
    for i, unit in enumerate(units):
        if i in explained or not mentions(grammar, key, unit.text):
            continue
        word = doubt_word(grammar, unit.text)
        if word is not None:
            return Finding(False, unit.text, detail=MissingDetail.CONTRADICTED, stopped_at=word)
    other = (Item.RESET_INSTRUCTED if item is Item.IDENTITY_VERIFIED
             else Item.IDENTITY_VERIFIED).value
    for i in confirming:
        after = i + 1
        if after < len(units) and after not in explained:
            text = units[after].text
            if names(grammar, other, text) and not mentions(grammar, key, text):
                # it names the other item and none of this one's words: it is about the other
                # item (and takes that one back by the topic rule), not a continuation of this
                continue
            word = doubt_word(grammar, text, after=True)
            if word is not None:
                return Finding(False, units[after].text, detail=MissingDetail.CONTRADICTED,
                               stopped_at=word)
    if confirming:
        first = confirming[0]
        return Finding(True, units[first].text, rule=verdicts[first].forms.get(key))
    if template is not None:
        return template
    near = next((i for i, u in enumerate(units) if mentions(grammar, key, u.text)), None)
    if near is not None and verdicts[near].stopped_at:
        # the word the reply quotes: how far the full grammar got (verdicts skip forms that
        # cannot match, which changes no verdict but can stop a failed parse earlier)
        word = judge_sentence(grammar, units[near].text, full=True).stopped_at
        return Finding(False, units[near].text, detail=MissingDetail.UNEXPLAINED,
                       stopped_at=word)
    return Finding(False)


def read_confirmations(
    units: list[Sentence], answers: list[TemplateAnswer], grammar: Grammar,
    judged: dict[str, SentenceVerdict] | None = None,
) -> dict[Item, Finding]:
    """The identity and instruction findings of the sender's new text.

    A retraction that names the reset ("niet resetten", "do not reset the 2FA yet") takes back
    the instruction only: the identity is still judged with every veto (a sentence after it
    that doubts it, a topic word with a doubt word...). Any other retraction ("wacht hier nog
    even mee", "please disregard") names no item and takes back the whole request.

    `judged` carries verdicts between the renderings of one message (text/plain and HTML
    mostly hold the same sentences): a verdict depends on the sentence and the grammar only."""
    negated: Finding | None = None
    for unit in units:
        phrase = retraction(grammar, unit.text)
        if phrase is None:
            continue
        if not names(grammar, Item.RESET_INSTRUCTED.value, phrase):
            taken_back = Finding(False, unit.text, detail=MissingDetail.RETRACTED,
                                 stopped_at=phrase)
            return {Item.IDENTITY_VERIFIED: taken_back, Item.RESET_INSTRUCTED: taken_back}
        negated = negated or Finding(False, unit.text, detail=MissingDetail.NEGATED,
                                     stopped_at=phrase)
    judged = {} if judged is None else judged
    verdicts = []
    for unit in units:
        verdict = judged.get(unit.text)
        if verdict is None:
            verdict = judged[unit.text] = judge_sentence(grammar, unit.text)
        verdicts.append(verdict)
    found = {
        item: _judge_item(item, units, verdicts, answers, grammar)
        for item in (Item.IDENTITY_VERIFIED, Item.RESET_INSTRUCTED)
    }
    if negated is not None:
        found[Item.RESET_INSTRUCTED] = negated
    return found
