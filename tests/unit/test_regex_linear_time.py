"""Every regular expression runs in linear time on hostile input (issue #11, items 4 and 7).

Python's `re` backtracks: two repetitions that can match the same characters next to each other
("\\s*-?\\s*"), or a repetition tried from every position of a long run, cost quadratic or cubic
time. An attacker measured 30-66 s for one line of "Dossier" and blanks, 15 s for a folded
Auto-Submitted value and 23 s for `<p>` runs inside a `<td>`. So every pattern the rules compile
to (rules/automatic.yaml, rules/extraction.yaml, rules/phrases.*.yaml) and every module-level
pattern in reset_mailbot.domain runs here on hostile 100 KB inputs, each call within BUDGET CPU
seconds, and the whole extraction of each hostile text within EXTRACT_BUDGET.

The hostile inputs are generic (long runs of one character, alternating pairs, label words with
blanks) and derived from each pattern: for every unbounded repetition, the shortest text that
leads up to it followed by a long run of a character it repeats and one that ends the match.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

import pytest

import reset_mailbot.domain
from reset_mailbot.domain.extraction import extract_text
from reset_mailbot.domain.extraction.account import find_addresses
from reset_mailbot.domain.extraction.html_text import html_to_text
from reset_mailbot.domain.rules import AutomaticRules
from reset_mailbot.rules_loader import load_yaml_model, packaged_rules_dir
from tests.unit.extraction_helpers import shipped_rules

SIZE = 100_000
BUDGET = 0.5  # CPU seconds for one search/finditer/match on a 100 KB input
EXTRACT_BUDGET = 1.0  # CPU seconds for extract_text / html_to_text on one hostile input
ABORT = 5.0  # wall seconds: a regression fails the test instead of hanging the suite
END = "\u00a7"  # "§": no rule matches it, so a run followed by it has to fail and backtrack


def _fill(unit: str, size: int = SIZE) -> str:
    return (unit * (size // max(1, len(unit)) + 1))[:size]


# -- generic hostile inputs ---------------------------------------------------------------------

_RUNS = {
    "spaces": " ",
    "tabs": "\t",
    "blanks": " \t",
    "all-blanks": " \t\r\n\f\v\u00a0",
    "quotes": '"',
    "encoded-words": "=?utf-8?q?",
    "parens": "(",
    "dots": ".",
    "ats": "@",
    "hyphens": "-",
    "digits": "0123456789",
    "letters": "a",
    # alternating pairs
    "word-space": "a ",
    "word-tab": "a\t",
    "word-hyphen": "a-",
    "word-dot": "a.",
    "word-at": "a@",
    "digit-space": "1 ",
    "colon-space": ": ",
    "dot-space": ". ",
    "hyphen-space": "- ",
    "paren-word": "(a",
    "bracket-space": "[ ",
    "address-like": "x@y.",
}
_ENDED = ("spaces", "tabs", "blanks", "letters", "digits")  # also as a run followed by END
# label words the rules read, followed by long runs of blanks ("Dossier" + 1,500 spaces: 30 s);
# each pattern also gets runs after the words of its own (see _derived_inputs)
_LABEL_WORDS = ("dossier", "e-mailadres", "van:", "forwarded message", "identiteit", "re:")


def _run_inputs() -> dict[str, str]:
    inputs = {name: _fill(unit) for name, unit in _RUNS.items()}
    inputs.update({f"{name}, end": _fill(_RUNS[name], SIZE - 1) + END for name in _ENDED})
    inputs["p-in-td"] = "<table><tr><td>x" + _fill("<p>", SIZE - 30) + "y</td></tr></table>"
    inputs["letters, space, end"] = _fill("a", SIZE - 2) + " " + END
    inputs["angle, letters"] = "<" + _fill("a", SIZE - 1)
    return inputs


def _label_inputs() -> dict[str, str]:
    inputs = {}
    for word in _LABEL_WORDS:
        for name, blank in (("spaces", " "), ("tabs", "\t")):
            inputs[f"{word}, {name}, end"] = word + _fill(blank, SIZE - len(word) - 1) + END
        inputs[f"({word}, blanks)*"] = _fill(word + "   \t ")
    return inputs


RUNS = _run_inputs()  # searched (finditer) and matched
LABELS = _label_inputs()  # matched: a search on them is what the derived inputs do per pattern
GENERIC = {**RUNS, **LABELS}


# -- inputs derived from a pattern -----------------------------------------------------------------

_CANDIDATES = (" ", "\t", "a", "0", "-", ".", ":", "/", "(", "@", "<", '"', "_", "*", "#", "\n")
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_CATEGORY: dict[object, Callable[[str], bool]] = {
    sre.CATEGORY_DIGIT: str.isdecimal,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}


def _in_class(items: list[tuple[object, object]], ch: str) -> bool:
    negate = bool(items) and items[0][0] is sre.NEGATE
    found = False
    for op, value in items:
        if op is sre.LITERAL:
            found = found or ord(ch) == value
        elif op is sre.RANGE:
            lo, hi = value  # type: ignore[misc]
            found = found or lo <= ord(ch) <= hi
        elif op is sre.CATEGORY:
            found = found or _CATEGORY.get(value, lambda c: False)(ch)
    return found != negate


def _chars(op: object, value: object) -> list[str]:
    """Candidate characters one single-character item matches, blanks first."""
    if op is sre.LITERAL:
        return [chr(value)]  # type: ignore[arg-type]
    if op is sre.NOT_LITERAL:
        return [c for c in _CANDIDATES if ord(c) != value]
    if op is sre.ANY:
        return [c for c in _CANDIDATES if c != "\n"]
    if op is sre.IN:
        found = [c for c in _CANDIDATES if _in_class(value, c)]  # type: ignore[arg-type]
        literal = next((chr(v) for o, v in value if o is sre.LITERAL), None)  # type: ignore[union-attr]
        if literal is not None and _in_class(value, literal) and literal not in found:  # type: ignore[arg-type]
            found.append(literal)
        return found
    return []


def _shortest(items: list[tuple[object, object]]) -> str:
    """A short text one sequence of items matches (first branch of every alternation)."""
    out = []
    for op, value in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            chars = _chars(op, value)
            out.append(next((c for c in chars if c.isalnum()), chars[0] if chars else ""))
        elif op is sre.BRANCH:
            out.append(_shortest(value[1][0]))  # type: ignore[index]
        elif op is sre.SUBPATTERN:
            out.append(_shortest(value[3]))  # type: ignore[index]
        elif op is sre.ATOMIC_GROUP:
            out.append(_shortest(value))  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, _, body = value  # type: ignore[misc]
            out.append(_shortest(body) * low)
    return "".join(out)


def _units(body: list[tuple[object, object]]) -> list[str]:
    """What a repetition repeats: the blanks and one other character of a single-character item
    (in that order of preference), or the shortest text of a group."""
    if len(body) == 1 and body[0][0] in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
        chars = _chars(*body[0])
        blanks = [c for c in chars if c in " \t"]
        return blanks + [c for c in chars if c not in " \t"][:1]
    text = _shortest(body)
    return [text] if text else []


def _probes(items: list[tuple[object, object]], prefix: str, out: set[tuple[str, str]]) -> None:
    for op, value in items:
        if op in _REPEATS:
            _, high, body = value  # type: ignore[misc]
            if high is sre.MAXREPEAT or high > 64:
                out.update((prefix, unit) for unit in _units(body))
            _probes(body, prefix, out)
        elif op is sre.BRANCH:
            for branch in value[1]:  # type: ignore[index]
                _probes(branch, prefix, out)
        elif op is sre.SUBPATTERN:
            _probes(value[3], prefix, out)  # type: ignore[index]
        elif op is sre.ATOMIC_GROUP:
            _probes(value, prefix, out)  # type: ignore[arg-type]
        elif op in (sre.ASSERT, sre.ASSERT_NOT) and value[0] == 1:  # type: ignore[index]
            _probes(value[1], prefix, out)  # type: ignore[index]
        prefix += _shortest([(op, value)])


@cache
def _derived_inputs(pattern: str, flags: int) -> tuple[tuple[str, str], ...]:
    """(name, text): what leads up to each unbounded repetition, then a long run of what it
    repeats, then END; and all of those leads repeated with short runs, for finditer."""
    found: set[tuple[str, str]] = set()
    _probes(list(sre_parse.parse(pattern, flags & ~re.DEBUG)), "", found)
    out = [
        (f"{prefix[-40:]!r} + {unit!r}*", prefix + _fill(unit, SIZE - len(prefix) - 1) + END)
        for prefix, unit in sorted(found)
    ]
    leads = sorted({prefix for prefix, _ in found if prefix})
    for blank in (" ", "\t"):
        if leads:
            text = _fill("".join(f"{lead}{blank * 3}{END} " for lead in leads))
            out.append((f"leads with {blank!r}*3, repeated", text))
    return tuple(out)


# -- running with a CPU budget ---------------------------------------------------------------------


class _Runaway(Exception):
    pass


def _cpu_seconds(call: Callable[[], object]) -> float:
    """CPU seconds `call` took; inf when it ran longer than ABORT (re checks for signals)."""
    alarm = threading.current_thread() is threading.main_thread()
    if alarm:

        def _stop(signum: int, frame: object) -> None:
            raise _Runaway

        previous = signal.signal(signal.SIGALRM, _stop)
        signal.setitimer(signal.ITIMER_REAL, ABORT)
    start = time.process_time()
    try:
        call()
        return time.process_time() - start
    except _Runaway:
        return float("inf")
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _slow_calls(
    pattern: re.Pattern, use: Callable[[re.Pattern, str | bytes], object] | None = None
) -> list[str]:
    """Every (call, input) on which `pattern` took more than BUDGET CPU seconds.

    Without `use`: match on every input, and finditer (search, sub and findall cost the same)
    on the runs and on the derived leads repeated: a derived input leads up to a repetition from
    position 0, where a search tries first. With `use`: that call on every input."""
    source = pattern.pattern
    is_bytes = isinstance(source, bytes)
    derived = _derived_inputs(
        source.decode("latin-1") if is_bytes else source,
        pattern.flags & ~(re.UNICODE | re.ASCII | re.DEBUG),
    )
    calls: list[tuple[str, str, Callable[[re.Pattern, str | bytes], object]]] = []
    for name, text in [*GENERIC.items(), *derived]:
        if use is not None:
            calls.append((f"as used on {name}", text, use))
            continue
        calls.append((f"match on {name}", text, _match))
        if name in RUNS or name.startswith("leads with"):
            calls.append((f"finditer on {name}", text, _finditer))
    slow = []
    for label, text, call in calls:
        data = text.encode("utf-8") if is_bytes else text
        seconds = _cpu_seconds(lambda call=call, data=data: call(pattern, data))
        if seconds > BUDGET:
            slow.append(f"{label}: {seconds:.2f} s")
    return slow


def _finditer(pattern: re.Pattern, text: str | bytes) -> None:
    for _ in pattern.finditer(text):
        pass


def _match(pattern: re.Pattern, text: str | bytes) -> None:
    pattern.match(text)


# -- the patterns ---------------------------------------------------------------------------------


def _rule_patterns() -> Iterator[tuple[str, re.Pattern[str]]]:
    compiled = shipped_rules().compiled
    for field in dataclasses.fields(compiled):
        value = getattr(compiled, field.name)
        if isinstance(value, re.Pattern):
            yield f"extraction.{field.name}", value
    automatic = load_yaml_model(packaged_rules_dir() / "automatic.yaml", AutomaticRules)
    for n, rule in enumerate(automatic.headers):
        yield f"automatic[{n}].{rule.header}", rule.regex


def _module_patterns() -> Iterator[tuple[str, re.Pattern]]:
    package = reset_mailbot.domain
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in sorted(vars(module).items()):
            if isinstance(value, re.Pattern):
                yield f"{info.name}.{name}", value


def _local_tail_use(pattern: re.Pattern, text: str | bytes) -> None:
    # only ever searched in the 64 characters before an "@" (account.find_addresses)
    assert isinstance(text, str)
    find_addresses([text])
    for at in range(64, min(len(text), 64 * 200), 64):
        pattern.search(text, at - 64, at)


# patterns that are linear only the way the code calls them (the name says where)
_AS_USED: dict[str, Callable[[re.Pattern, str | bytes], object]] = {
    "reset_mailbot.domain.extraction.account._LOCAL_TAIL": _local_tail_use,
    "reset_mailbot.domain.wire._FIELD_NAME": _match,  # .match() on one header line
}

RULE_PATTERNS = dict(_rule_patterns())
MODULE_PATTERNS = dict(_module_patterns())


def test_every_rule_list_is_covered() -> None:
    # the walk finds the patterns the issue names, so a renamed field cannot skip them
    assert "extraction.ref_label" in RULE_PATTERNS
    assert "extraction.account_label" in RULE_PATTERNS
    assert "automatic[0].Auto-Submitted" in RULE_PATTERNS
    assert "reset_mailbot.domain.extraction.html_text._CELL_GAP" in MODULE_PATTERNS
    assert len(RULE_PATTERNS) >= 40


@pytest.mark.parametrize("name", sorted(RULE_PATTERNS))
def test_rule_pattern_is_linear(name: str) -> None:
    assert not _slow_calls(RULE_PATTERNS[name]), _slow_calls(RULE_PATTERNS[name])


@pytest.mark.parametrize("name", sorted(MODULE_PATTERNS))
def test_module_pattern_is_linear(name: str) -> None:
    slow = _slow_calls(MODULE_PATTERNS[name], _AS_USED.get(name))
    assert not slow, slow


# -- whole extraction ---------------------------------------------------------------------------

_SENTENCES = {
    # a contrast word after every word: each "maar" searched the rest of the sentence again
    "identity-but": "De identiteit is gecontroleerd " + _fill("maar ", SIZE - 40),
    "instruction-but": "Graag de 2FA resetten " + _fill("maar ", SIZE - 30),
    "identity-and": "De identiteit is gecontroleerd " + _fill("en ", SIZE - 40),
    "one-long-line": _fill("Graag de 2FA van piet@example.org resetten, identiteit gezien ", SIZE),
    # a line with a digit, so the reference label is searched ("Dossier" + 1,500 spaces: 30 s)
    "dossier-line": _fill("Dossier" + " " * 1500 + END + "1\n"),
    "reference-tabs": _fill("Dossiernummer" + "\t" * 1500 + END + "4412-88\n"),
    "account-label-line": _fill("E-mailadres" + " " * 190 + END + " piet@example.org\n"),
    "wrapped-wrote": _fill("Op 1 januari 2025 schreef " + " " * 500 + "\n"),
    "template-lines": _fill("Identiteit gecontroleerd:" + " " * 200 + "ja /\n"),
    "quote-headers": _fill("Forwarded message" + " " * 1500 + END + "\n"),
    "sign-offs": _fill("Met vriendelijke groet" + " " * 100 + ".\n"),
}


def _extraction_inputs() -> dict[str, str]:
    inputs = {name: GENERIC[name] for name in GENERIC if not name.startswith("(")}
    inputs.update(_SENTENCES)
    return inputs


EXTRACTION_INPUTS = _extraction_inputs()


def test_extract_text_is_bounded_on_hostile_text() -> None:
    rules = shipped_rules()
    slow = {}
    for name, text in EXTRACTION_INPUTS.items():
        seconds = _cpu_seconds(lambda text=text: extract_text(text, rules, frozenset()))
        if seconds > EXTRACT_BUDGET:
            slow[name] = round(seconds, 2)
    assert not slow, slow


@pytest.mark.parametrize(
    "markup",
    [
        "<table><tr><td>x" + "<p>" * SIZE + "y</td></tr></table>",  # 23 s before
        "<table><tr><td>x" + "<p> </p>\t" * (SIZE // 8) + "y</td></tr></table>",
        "<table><tr>" + "<td> </td>" * (SIZE // 10) + "</tr></table>",
        "<div>" + "<br>" * SIZE + "</div>",
    ],
    ids=["p-in-td", "p-and-tabs-in-td", "empty-cells", "br-run"],
)
def test_html_to_text_is_bounded(markup: str) -> None:
    assert _cpu_seconds(lambda: html_to_text(markup)) <= EXTRACT_BUDGET
