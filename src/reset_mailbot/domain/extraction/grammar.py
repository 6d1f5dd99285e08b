"""Confirmations read by allowlist (issue #12): a clause confirms only when every word of it is
explained by an affirmative form of `rules/grammar.yaml`.

The old reader found an affirmative phrase and then looked for reasons to refuse it; every
refusal it did not know ("hopelijk", "volgens de inwoner", "door zijn zoon") became a
confirmation. Here it is turned around. A form is a sequence of slots; a slot names a word
class and how often it may occur (`class`, `class?`, `class*`, `class+`); a class is a closed
list of phrases, and a phrase is words and references to other classes (`<doc>`), plus the
built-in classes `<NAME>` (a capitalised name with Dutch particles and initials: "Van den Akker",
"R. Koster"),
`<EMAIL>`, `<NUMBER>` and `<DATE>`. A clause matches a form only when the whole clause is
consumed; when no form matches, the word where the furthest attempt stopped is reported, so the
reply can say which word stopped the confirmation.

Matching is dynamic programming over token positions with memoised class matches: linear in the
clause length times the grammar size, whatever the input (no regular expression backtracking).
Pure: no I/O; the grammar is data compiled once by `compile_grammar`.

Why one module of ~740 lines: the grammar model, its compiler and the matcher share the
compiled representation and the memo tables of the hot loop (a third of `decide()`'s time);
split apart, every change to one would have to be mirrored in the others.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

BUILTINS = ("NAME", "EMAIL", "NUMBER", "DATE")
#: longest clause a form is tried on: a confirmation is a short statement; a 60-word clause is
#: not one (and the work per clause stays bounded)
MAX_TOKENS = 60

# words (hyphenated, with an apostrophe), short dates, single punctuation marks; addresses are
# found per whitespace-separated chunk by `_is_address` (no regex: linear on any chunk)
_TOKEN = re.compile(r"\d{1,2}[-/]\d{1,2}(?:[-/]\d{2,4})?|\w+(?:[-'\u2019]\w+)*|[^\w\s]")
_DATE = re.compile(r"\d{1,2}[-/]\d{1,2}(?:[-/]\d{2,4})?")
_CHUNK_SPLIT = re.compile(r"([<>()\[\],;:\"]+)")
_PARTICLES = frozenset({"van", "de", "der", "den", "ter", "ten", "te", "het", "'t", "in", "op",
                        "el", "al", "la", "le", "da", "di", "du", "von", "zu", "bin", "ben"})
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-")
_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def _is_address(text: str) -> bool:
    """An addr-spec as people type them: one "@", a plain local part, a dotted domain."""
    local, at, domain = text.lower().partition("@")
    if not at or not local or "@" in domain or len(text) > 254:
        return False
    if not set(local) <= _LOCAL_CHARS or local[0] == "." or local[-1] == ".":
        return False
    labels = domain.split(".")
    return (len(labels) >= 2 and set(domain) <= _DOMAIN_CHARS
            and all(label and label[0] != "-" and label[-1] != "-" for label in labels))


@dataclass(frozen=True)
class Token:
    text: str  # as written (case kept: names)
    norm: str  # lower case, diacritics removed, what classes are matched on


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise(text: str) -> str:
    """NFKC, curly quotes made plain: the form every clause is read in."""
    if not text.isascii():  # ASCII is NFKC already and holds no curly quote
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return text


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2013": "-",
                         "\u2014": "-"})


def tokens(text: str) -> list[Token]:
    """The words of `text` (a fresh list: callers may trim it)."""
    return list(_tokens(text))


@lru_cache(maxsize=512)
def _tokens(text: str) -> tuple[Token, ...]:
    out: list[Token] = []
    for chunk in text.split():
        pieces = _CHUNK_SPLIT.split(chunk) if "@" in chunk else [chunk]
        for piece in pieces:
            core = piece.rstrip(".?!")
            if "@" in core and _is_address(core):
                out.append(Token(core, core.lower()))
                out.extend(Token(ch, ch) for ch in piece[len(core):])
                continue
            out.extend(Token(m.group(), _strip_marks(m.group()).lower())
                       for m in _TOKEN.finditer(piece))
    return tuple(out)


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def suspicious(text: str) -> str | None:
    """Why a clause can never confirm whatever its words: an invisible format character
    (zero-width space, soft hyphen, BOM: Unicode category Cf) or a word mixing letters of two
    scripts (a Cyrillic "е" in "niet"). Returns the offending word, else None.

    ASCII words are skipped: every format character is above U+00AD and every ASCII letter is
    Latin, so neither test can fire on them (most words of a Dutch or English request)."""
    if text.isascii():
        return None
    for word in text.split():
        if word.isascii():
            continue
        if any(unicodedata.category(ch) == "Cf" for ch in word):
            return word.encode("unicode_escape").decode("ascii")
        scripts = {s for ch in word if (s := _script(ch)) is not None}
        if len(scripts) > 1:
            return word
    return None


@dataclass(frozen=True)
class Slot:
    name: str
    low: int  # 0 or 1
    many: bool


@dataclass(frozen=True)
class Form:
    item: str
    name: str
    language: str
    slots: tuple[Slot, ...]


@dataclass
class Grammar:
    """Compiled grammar: classes as tuples of phrases (each a tuple of words / <refs>)."""

    classes: Mapping[str, tuple[tuple[str, ...], ...]]
    forms: tuple[Form, ...]
    topics: Mapping[str, frozenset[str]] = field(default_factory=dict)
    subjects: Mapping[str, frozenset[str]] = field(default_factory=dict)
    doubt: frozenset[str] = frozenset()
    doubt_after: frozenset[str] = frozenset()
    account_doubt: frozenset[str] = frozenset()
    other_person: frozenset[str] = frozenset()
    account_context: frozenset[str] = frozenset()
    account_correction: frozenset[str] = frozenset()
    other_address: frozenset[str] = frozenset()
    retractions: tuple[tuple[str, ...], ...] = ()
    template_yes: frozenset[str] = frozenset()

    @property
    def retraction_starts(self) -> dict[str, tuple[tuple[str, ...], ...]]:
        cached = self.__dict__.get("_starts")
        if cached is None:
            index: dict[str, list[tuple[str, ...]]] = {}
            for phrase in self.retractions:
                if phrase:
                    index.setdefault(phrase[0], []).append(phrase)
            cached = {k: tuple(v) for k, v in index.items()}
            self.__dict__["_starts"] = cached
        return cached

    def forms_for(self, item: str) -> tuple[Form, ...]:
        return tuple(f for f in self.forms if f.item == item)

    def phrases_split_at(
        self, name: str, word: str
    ) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
        """The phrases of class `name` that can start with the token `word` (`_phrases_at`),
        as (phrases of literal words only, which start with `word`; the others): the matcher
        compares a literal phrase with one slice of the clause."""
        split = self.__dict__.setdefault("_split_index", {})
        key = (name, word)
        found = split.get(key)
        if found is None:
            phrases = self._phrases_at(name, word)
            found = split[key] = (
                tuple(p for p in phrases if not any(w.startswith("<") for w in p)),
                tuple(p for p in phrases if any(w.startswith("<") for w in p)))
            if len(split) > 100_000:  # keyed by clause words: bounded whatever the input
                split.clear()
        return found

    def _phrases_at(self, name: str, word: str) -> tuple[tuple[str, ...], ...]:
        """Those whose first word is `word`, and those starting with a class that can (a
        builtin can start with any word): most classes are ruled out by their first word. The
        index is built per class from the grammar alone, so its size never depends on input."""
        indexes = self.__dict__.setdefault("_index", {})
        index = indexes.get(name)
        if index is None:
            by_word: dict[str, list[tuple[str, ...]]] = {}
            any_word: list[tuple[str, ...]] = []
            for phrase in self.classes.get(name, ()):
                first = phrase[0]
                starts = (frozenset({first}) if not first.startswith("<")
                          else self._first_words(first[1:-1]))
                if starts is None:
                    any_word.append(phrase)
                    continue
                for w in starts:
                    by_word.setdefault(w, []).append(phrase)
            index = indexes[name] = ({w: tuple(v) for w, v in by_word.items()}, tuple(any_word))
        by_first, anywhere = index
        return by_first.get(word, ()) + anywhere

    def sentence_forms_at(self, word: str) -> tuple[Form, ...]:
        """The forms a clause may be (every item but template answers) that can start with
        `word`; indexed once per grammar by first word, like `_phrases_at`."""
        index = self.__dict__.get("_sentence_forms")
        if index is None:
            by_word: dict[str, list[Form]] = {}
            anywhere: list[Form] = []
            for form in self.forms:
                if form.item == "template_yes":
                    continue
                first = self._form_first(form)
                if first is None:
                    anywhere.append(form)
                    continue
                for w in first:
                    by_word.setdefault(w, []).append(form)
            index = self.__dict__["_sentence_forms"] = (
                {w: tuple(v) for w, v in by_word.items()}, tuple(anywhere))
        by_first, anyhow = index
        return by_first.get(word, ()) + anyhow

    def possible_forms(self, words: frozenset[str]) -> Callable[[Form], bool]:
        """Which forms can match a sentence made of these words at all, as a test per form.
        Each required slot needs one of its class's words (`_needs`); a sentence without any
        of them cannot hold that clause, so the matcher skips the form. Only ever rules out,
        never lets in. The needs the words meet are collected once (word -> needs holding it,
        indexed per grammar)."""
        index = self.__dict__.get("_need_index")
        if index is None:
            index = self.__dict__["_need_index"] = self._index_needs()
        by_word, by_form = index
        met: set[int] = set()
        for word in words:
            held = by_word.get(word)
            if held is not None:
                met |= held
        return lambda form: by_form[id(form)] <= met

    def _index_needs(self) -> tuple[dict[str, frozenset[int]], dict[int, frozenset[int]]]:
        numbers: dict[frozenset[str], int] = {}
        by_form: dict[int, frozenset[int]] = {}
        for form in self.forms:
            needs = (self._needs(slot.name) for slot in form.slots if slot.low)
            by_form[id(form)] = frozenset(numbers.setdefault(need, len(numbers))
                                          for need in needs if need is not None)
        by_word: dict[str, set[int]] = {}
        for need, number in numbers.items():
            for word in need:
                by_word.setdefault(word, set()).add(number)
        return {w: frozenset(v) for w, v in by_word.items()}, by_form

    def _needs(self, name: str) -> frozenset[str] | None:
        """Words of which every match of class `name` holds at least one (None: no such set,
        e.g. a phrase made of builtins only)."""
        cache = self.__dict__.setdefault("_needs_cache", {})
        if name in cache:
            return cache[name]
        if name in BUILTINS or name not in self.classes:
            return None
        cache[name] = None  # a cycle: assume nothing (never wrongly rules out)
        words: set[str] = set()
        for phrase in self.classes[name]:
            need: frozenset[str] | None = None
            for part in phrase:
                if not part.startswith("<"):
                    need = frozenset({part})
                    break
                inner = self._needs(part[1:-1])
                if inner is not None:
                    need = inner
                    break
            if need is None:
                return None  # cache stays None: this phrase needs no particular word
            words |= need
        cache[name] = frozenset(words)
        return cache[name]

    def _form_first(self, form: Form) -> frozenset[str] | None:
        """The words `form` can start with (None: any): its first slots up to the first
        required one decide; a form whose every slot is optional can start anywhere."""
        words: set[str] = set()
        for slot in form.slots:
            inner = self._first_words(slot.name)
            if inner is None:
                return None
            words |= inner
            if slot.low:
                return frozenset(words)
        return None  # every slot optional

    def _first_words(self, name: str) -> frozenset[str] | None:
        """Every literal word a phrase of class `name` can start with; None when a builtin
        (<NAME>, <EMAIL>...) can start it, so any word may."""
        cache = self.__dict__.setdefault("_first", {})
        if name in cache:
            return cache[name]
        if name in BUILTINS:
            return None
        if name not in self.classes:  # nothing known about it: any word may start it
            return None
        cache[name] = frozenset()  # a class that starts with itself adds nothing (refused at load)
        words: set[str] = set()
        for phrase in self.classes.get(name, ()):
            first = phrase[0]
            if not first.startswith("<"):
                words.add(first)
                continue
            inner = self._first_words(first[1:-1])
            if inner is None:
                cache[name] = None
                return None
            words |= inner
        cache[name] = frozenset(words)
        return cache[name]


def parse_slot(text: str) -> Slot:
    text = text.strip()
    if text.endswith("*"):
        return Slot(text[:-1], 0, True)
    if text.endswith("+"):
        return Slot(text[:-1], 1, True)
    if text.endswith("?"):
        return Slot(text[:-1], 0, False)
    return Slot(text, 1, False)


def phrase_words(phrase: str) -> tuple[str, ...]:
    """A phrase as the words it must match: folded like the clause, punctuation split off."""
    out: list[str] = []
    for part in phrase.split():
        if part.startswith("<") and part.endswith(">"):
            out.append(part)
        else:
            out.extend(t.norm for t in tokens(normalise(part)))
    return tuple(out)


_NOTHING: frozenset[int] = frozenset()


class _Matcher:
    """One clause against the grammar: memoised (class, position) -> end positions."""

    def __init__(self, grammar: Grammar, toks: Sequence[Token]) -> None:
        self.grammar = grammar
        self.toks = toks
        self.norms = tuple(t.norm for t in toks)
        self.size = len(toks)
        self.words = frozenset(self.norms)
        self.memo: dict[tuple[str, int], frozenset[int]] = {}
        self.furthest = 0

    def _reach(self, pos: int) -> None:
        self.furthest = max(self.furthest, pos)

    def builtin(self, name: str, pos: int) -> frozenset[int]:
        toks = self.toks
        if pos >= len(toks):
            return frozenset()
        tok = toks[pos]
        if name == "EMAIL":
            return self._email(pos)
        if name == "NUMBER":
            ok = tok.norm.isdigit() or (any(c.isdigit() for c in tok.norm)
                                        and all(c.isalnum() or c == "-" for c in tok.norm))
            return frozenset({pos + 1}) if ok else frozenset()
        if name == "DATE":
            return frozenset({pos + 1}) if _DATE.fullmatch(tok.text) else frozenset()
        # NAME: up to four words, particles and initials ("R.", "J.P.") allowed inside, ending
        # in a capitalised word
        ends: set[int] = set()
        end, words = pos, 0
        while end < len(toks) and words < 4:
            word = toks[end]
            if (len(word.text) == 1 and word.text.isupper() and end + 1 < len(toks)
                    and toks[end + 1].text == "."):
                end, words = end + 2, words + 1  # an initial: never the last word of a name
                continue
            bare = word.text.removesuffix("'s").removesuffix("\u2019s")
            capital = bare[:1].isupper() and bare.replace("-", "").isalpha()
            if capital:
                ends.add(end + 1)
            elif word.norm not in _PARTICLES:
                break
            end, words = end + 1, words + 1
        return frozenset(ends)

    def _email(self, pos: int) -> frozenset[int]:
        """An address as mail clients write it: x@y, <x@y>, x@y<mailto:x@y>, x@y (mailto:x@y)."""
        toks = self.toks

        def at(i: int, *norms: str) -> bool:
            return all(i + k < len(toks) and toks[i + k].norm == n for k, n in enumerate(norms))

        def address(i: int) -> bool:
            return i < len(toks) and "@" in toks[i].text and _is_address(toks[i].text)

        if at(pos, "<") and address(pos + 1) and at(pos + 2, ">"):
            return frozenset({pos + 3})
        if not address(pos):
            return self._obfuscated(pos)
        for opening, closing in (("<", ">"), ("(", ")"), ("[", "]")):
            if at(pos + 1, opening, "mailto", ":") and address(pos + 4) and at(pos + 5, closing):
                return frozenset({pos + 6})
        return frozenset({pos + 1})

    def _obfuscated(self, pos: int) -> frozenset[int]:
        """An address written to dodge harvesters ("jan.vos[at]gmail.com", "peter (at) gmail
        (dot) com"): it explains the words of a sentence, but is never an account candidate
        (account.py reads only real addresses), so the reply still asks for the address."""
        toks = self.toks
        end = min(len(toks), pos + 24)

        def word(i: int) -> bool:
            return i < end and toks[i].norm.replace("-", "").replace("_", "").isalnum()

        def marker(i: int, name: str) -> int:
            for opening, closing in (("[", "]"), ("(", ")"), ("{", "}")):
                if (i + 2 < end and toks[i].norm == opening and toks[i + 1].norm == name
                        and toks[i + 2].norm == closing):
                    return i + 3
            return -1

        if not word(pos):
            return frozenset()
        i = pos + 1
        while i + 1 < end and toks[i].norm == "." and word(i + 1):
            i += 2
        i = marker(i, "at")
        if i < 0 or not word(i):
            return frozenset()
        i, dots = i + 1, 0
        while True:
            after = i + 1 if i < end and toks[i].norm == "." else marker(i, "dot")
            if after < 0 or not word(after):
                break
            i, dots = after + 1, dots + 1
        return frozenset({i}) if dots else frozenset()

    def match_class(self, name: str, pos: int) -> frozenset[int]:
        key = (name, pos)
        memo = self.memo
        result = memo.get(key)
        if result is not None:
            return result
        memo[key] = _NOTHING  # a class that reaches itself matches nothing more
        if name in BUILTINS:
            result = self.builtin(name, pos)
        elif pos >= self.size:
            result = _NOTHING
        else:
            norms = self.norms
            literal, other = self.grammar.phrases_split_at(name, norms[pos])
            found: set[int] = set()
            reach = self.furthest
            for phrase in literal:  # its first word is norms[pos] (the index says so)
                end = pos + len(phrase)
                if norms[pos:end] == phrase:
                    found.add(end)
                    reach = max(reach, end)
                    continue
                k = 1  # how far it got: where a failed parse stopped
                while k < len(phrase) and pos + k < self.size and norms[pos + k] == phrase[k]:
                    k += 1
                reach = max(reach, pos + k)
            self.furthest = reach
            for phrase in other:
                found |= self.match_phrase(phrase, pos)
            result = frozenset(found) if found else _NOTHING
        if result:
            self.furthest = max(self.furthest, max(result))
        memo[key] = result
        return result

    def match_phrase(self, phrase: tuple[str, ...], pos: int) -> set[int]:
        current = {pos}
        for word in phrase:
            nxt: set[int] = set()
            for p in current:
                if word.startswith("<"):
                    nxt |= self.match_class(word[1:-1], p)
                elif p < len(self.toks) and self.toks[p].norm == word:
                    nxt.add(p + 1)
            if not nxt:
                return set()
            current = nxt
            for p in current:
                self._reach(p)
        return current

    def form_ends(self, form: Form, start: int) -> set[int]:
        """Where the slots of `form`, in order from `start`, can end."""
        current = {start}
        for slot in form.slots:
            reached: set[int] = set() if slot.low else set(current)
            frontier = set(current)
            while frontier:
                step: set[int] = set()
                for p in frontier:
                    step |= self.match_class(slot.name, p)
                new = step - reached
                reached |= step
                if not slot.many:
                    break
                frontier = new  # every phrase consumes a word: this ends
            current = reached
            if not current:
                return set()
        return current

    def match_form(self, form: Form) -> bool:
        """Whether `form` consumes the whole clause."""
        return len(self.toks) in self.form_ends(form, 0)

    def sentence(self, prune: bool = True) -> dict[str, str] | None:
        """item -> name of the form that confirms it, when the whole sentence is one or more
        complete forms joined by connectors ("De identiteit is gecontroleerd en wij geven
        opdracht ..."), else None. Every clause must be a form (of any item but template
        answers): one unexplained clause and the sentence confirms nothing. Paths are kept per
        set of items (at most a handful)."""
        size = len(self.toks)
        paths: dict[int, dict[frozenset[str], tuple[Form, ...]]] = {0: {frozenset(): ()}}
        possible = self.grammar.possible_forms(self.words)
        for pos in range(size + 1):
            if pos not in paths:
                continue
            starts = {pos}
            if pos:  # after a clause: a connector, then the next clause
                starts = set(self.match_class("connector", pos))
                if pos == size:
                    continue
            for start in starts:
                if start >= size:
                    continue
                for form in self.grammar.sentence_forms_at(self.toks[start].norm):
                    if prune and not possible(form):
                        continue
                    for end in self.form_ends(form, start):
                        if end <= start:
                            continue
                        reached = paths.setdefault(end, {})
                        for items, used in paths[pos].items():
                            reached.setdefault(items | {form.item}, (*used, form))
        complete = paths.get(size)
        if not complete or size == 0:
            return None
        confirmed: dict[str, str] = {}
        for used in complete.values():
            for form in used:
                if form.item != "neutral":
                    confirmed.setdefault(form.item, form.name)
        return confirmed


@dataclass(frozen=True)
class ClauseVerdict:
    form: str | None  # the form that explains every word, or None
    stopped_at: str | None = None  # the first word no form could explain


def judge_clause(grammar: Grammar, item: str, text: str) -> ClauseVerdict:
    """Does `text` (one clause or sentence, as written) confirm `item`, by some whole form?"""
    odd = suspicious(text)
    if odd is not None:
        return ClauseVerdict(None, odd)
    toks = tokens(normalise(text))
    while toks and toks[-1].norm in (".", "!"):  # a sentence's own end is no word
        toks.pop()
    while toks and toks[0].norm in ("-", "*", "\u2022", ">"):  # a bullet
        toks.pop(0)
    if not toks:
        return ClauseVerdict(None, None)
    if len(toks) > MAX_TOKENS:
        return ClauseVerdict(None, toks[MAX_TOKENS].text)
    matcher = _Matcher(grammar, toks)
    for form in grammar.forms_for(item):
        if matcher.match_form(form):
            return ClauseVerdict(form.name)
    at = min(matcher.furthest, len(toks) - 1)
    return ClauseVerdict(None, toks[at].text)


@dataclass(frozen=True)
class SentenceVerdict:
    items: frozenset[str]  # what the sentence confirms (empty: nothing)
    forms: Mapping[str, str] = field(default_factory=dict)  # item -> the form that matched
    stopped_at: str | None = None
    explained: bool = False  # every word explained by forms (neutral ones included)


def judge_sentence(grammar: Grammar, text: str, *, full: bool = False) -> SentenceVerdict:
    """What `text` (one sentence as written) confirms: every clause must be a whole form.

    Forms that cannot match these words are skipped (`Grammar.possible_forms`); that changes no
    verdict, only how far a failed parse got. `full=True` tries every form, so that
    `stopped_at` names the word a reader would (the reply quotes it)."""
    odd = suspicious(text)
    if odd is not None:
        return SentenceVerdict(frozenset(), {}, odd)
    toks = tokens(normalise(text))
    while toks and toks[-1].norm in (".", "!", ":"):
        toks.pop()
    while toks and toks[0].norm in ("-", "*", "\u2022", ">"):
        toks.pop(0)
    if not toks:
        return SentenceVerdict(frozenset())
    if len(toks) > MAX_TOKENS:
        return SentenceVerdict(frozenset(), {}, toks[MAX_TOKENS].text)
    matcher = _Matcher(grammar, toks)
    confirmed = matcher.sentence(prune=not full)
    if confirmed is not None:  # {} : wholly neutral ("Dank je wel!", "Alles is in orde.")
        return SentenceVerdict(frozenset(confirmed), confirmed, explained=True)
    at = min(matcher.furthest, len(toks) - 1)
    return SentenceVerdict(frozenset(), {}, toks[at].text)


def mentions(grammar: Grammar, item: str, text: str) -> bool:
    """Does `text` speak about `item` at all (a word of its topic list)?"""
    topic = grammar.topics.get(item, frozenset())
    return any(t.norm in topic for t in tokens(normalise(text)))


def names(grammar: Grammar, item: str, text: str) -> bool:
    """Does `text` name `item` outright (a word of its `subjects` list: "paspoort", "2FA")?"""
    subject = grammar.subjects.get(item, frozenset())
    return any(t.norm in subject for t in tokens(normalise(text)))


def doubt_word(grammar: Grammar, text: str, after: bool = False) -> str | None:
    """The first word of the `doubt` (or `doubt_after`) list in `text`, else None."""
    words = grammar.doubt_after if after else grammar.doubt
    return next((t.text for t in tokens(normalise(text)) if t.norm in words), None)


def other_person(grammar: Grammar, text: str) -> str | None:
    """The first word naming someone other than the resident ("zoon", "ex-partner",
    "sister's": a possessive counts as its noun) in `text`, else None."""
    return next((t.text for t in tokens(normalise(text))
                 if possessive_base(t.norm) in grammar.other_person), None)


def possessive_base(word: str) -> str:
    """"sister's" -> "sister", "zoon's" -> "zoon"; other words unchanged."""
    return word[:-2] if word.endswith("'s") and len(word) > 2 else word


def retraction(grammar: Grammar, text: str) -> str | None:
    """A retraction or postponement anywhere ("wacht hier nog even mee", "please hold off"),
    which names no item but takes back the whole request; returns the phrase found. One pass
    over the words: phrases are looked up by their first word."""
    norms = tuple(t.norm for t in tokens(normalise(text)))
    starts = grammar.retraction_starts
    for i, word in enumerate(norms):
        for phrase in starts.get(word, ()):
            if norms[i : i + len(phrase)] == phrase:
                return " ".join(phrase)
    return None


class GrammarRules(BaseModel):
    """rules/grammar.yaml as written; `problems()` finds what pydantic types cannot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: dict[str, list[str]]
    forms: dict[str, dict[str, dict[str, str]]]  # item -> language -> name -> "slot slot ..."
    topics: dict[str, list[str]] = Field(default_factory=dict)
    subjects: dict[str, list[str]] = Field(default_factory=dict)
    doubt: list[str] = Field(default_factory=list)
    doubt_after: list[str] = Field(default_factory=list)
    account_doubt: list[str] = Field(default_factory=list)
    other_person: list[str] = Field(default_factory=list)
    account_context: list[str] = Field(default_factory=list)
    account_correction: list[str] = Field(default_factory=list)
    other_address: list[str] = Field(default_factory=list)
    retractions: list[str] = Field(default_factory=list)
    template_yes: list[str] = Field(default_factory=list)

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(location in the file, problem) for every reference that leads nowhere."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        known = set(self.classes) | set(BUILTINS)
        for name, phrases in self.classes.items():
            if not phrases:
                found.append((("classes", name), "a class needs at least one phrase"))
            for n, phrase in enumerate(phrases):
                words = phrase_words(str(phrase))
                if not words:
                    found.append((("classes", name, n), "empty phrase"))
                for word in words:
                    if word.startswith("<") and word[1:-1] not in known:
                        found.append((("classes", name, n), f"unknown class {word}"))
                if words and words[0] == f"<{name}>":
                    found.append((("classes", name, n), "a class cannot start with itself"))
        for item, languages in self.forms.items():
            if item not in ITEMS:
                found.append((("forms", item), f"unknown item (one of {', '.join(ITEMS)})"))
            for language, forms in languages.items():
                for form, text in forms.items():
                    slots = str(text).split()
                    for slot in slots:
                        name = parse_slot(slot).name
                        if "_" in name and name not in known:
                            found.append((("forms", item, language, form),
                                          f"unknown class {name!r}"))
                    if not slots:
                        found.append((("forms", item, language, form), "a form needs slots"))
        for key, lists in (("topics", self.topics), ("subjects", self.subjects)):
            for item in lists:
                if item not in ITEMS:
                    found.append(((key, item), f"unknown item (one of {', '.join(ITEMS)})"))
        word_lists = {"doubt": self.doubt, "doubt_after": self.doubt_after,
                      "account_doubt": self.account_doubt, "other_person": self.other_person,
                      "account_context": self.account_context,
                      "account_correction": self.account_correction,
                      "other_address": self.other_address,
                      **{f"topics.{k}": v for k, v in self.topics.items()},
                      **{f"subjects.{k}": v for k, v in self.subjects.items()}}
        for name, words in word_lists.items():
            for n, word in enumerate(words):
                if len(phrase_words(str(word))) != 1:  # "mw." would add the word "."
                    found.append(((*name.split("."), n),
                                  f"{word!r} is not one word (punctuation is a word of its own)"))
        return found

    def compile(self) -> Grammar:
        forms = [
            (item, name, language, str(slots).split())
            for item, languages in self.forms.items()
            for language, named in languages.items()
            for name, slots in named.items()
        ]
        grammar = compile_grammar(self.classes, forms, self.topics, self.doubt,
                                  self.doubt_after, self.retractions, self.template_yes)
        grammar.account_doubt = frozenset(
            w for p in self.account_doubt for w in phrase_words(str(p)))
        grammar.subjects = {k: frozenset(w for p in v for w in phrase_words(str(p)))
                            for k, v in self.subjects.items()}
        grammar.other_person = frozenset(
            w for p in self.other_person for w in phrase_words(str(p)))
        grammar.account_context = frozenset(
            w for p in self.account_context for w in phrase_words(str(p)))
        grammar.account_correction = frozenset(
            w for p in self.account_correction for w in phrase_words(str(p)))
        grammar.other_address = frozenset(
            w for p in self.other_address for w in phrase_words(str(p)))
        return grammar


ITEMS = ("identity_verified", "reset_instructed", "template_yes", "neutral")


def compile_grammar(
    classes: Mapping[str, Iterable[str]],
    forms: Iterable[tuple[str, str, str, Iterable[str]]],
    topics: Mapping[str, Iterable[str]],
    doubt: Iterable[str],
    doubt_after: Iterable[str],
    retractions: Iterable[str],
    template_yes: Iterable[str],
) -> Grammar:
    """Build the matcher's structures. A slot that names no class is a literal word."""
    compiled = {name: tuple(phrase_words(str(p)) for p in phrases)
                for name, phrases in classes.items()}
    literal: dict[str, tuple[tuple[str, ...], ...]] = {}
    built: list[Form] = []
    for item, name, language, slots in forms:
        parsed = []
        for text in slots:
            slot = parse_slot(str(text))
            if slot.name not in compiled and slot.name not in BUILTINS:
                key = f"'{slot.name}'"
                literal[key] = (phrase_words(slot.name),)
                slot = Slot(key, slot.low, slot.many)
            parsed.append(slot)
        built.append(Form(item, f"{language}:{name}", language, tuple(parsed)))
    return Grammar(
        classes={**compiled, **literal},
        forms=tuple(built),
        topics={k: frozenset(w for p in v for w in phrase_words(str(p)))
                for k, v in topics.items()},
        doubt=frozenset(w for p in doubt for w in phrase_words(str(p))),
        doubt_after=frozenset(w for p in doubt_after for w in phrase_words(str(p))),
        retractions=tuple(phrase_words(str(v)) for v in retractions),
        template_yes=frozenset(" ".join(phrase_words(str(v))) for v in template_yes),
    )
