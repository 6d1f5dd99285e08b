"""Extraction rule files load, validate with file:line errors, and compile once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reset_mailbot.domain.extraction import ExtractionRules, extract_text
from reset_mailbot.domain.reasons import Item
from reset_mailbot.rules_loader import RulesError, load_extraction_rules, packaged_rules_dir


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_rules_dir(), target)
    return target


def test_shipped_rules_load_both_languages() -> None:
    rules = load_extraction_rules(packaged_rules_dir())
    assert sorted(p.language for p in rules.phrases) == ["en", "nl"]
    assert rules.compiled is rules.compiled  # compiled once, cached
    assert any("phrases.nl.yaml" in line for line in rules.summary())


def test_empty_rules_extract_nothing() -> None:
    request = extract_text("Identiteit gecontroleerd: ja", ExtractionRules(), frozenset())
    assert not request.identity_verified


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_bad_regex_names_file_and_line(rules_dir: Path) -> None:
    _replace(rules_dir / "phrases.nl.yaml", "    - identiteit\\w*\n", "    - identiteit(\\w*\n")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "phrases.nl.yaml:" in str(err.value)
    assert "does not compile" in str(err.value)
    assert err.value.line is not None


def test_unknown_key_is_refused(rules_dir: Path) -> None:
    _replace(rules_dir / "extraction.yaml", "account_labels:", "acount_labels:")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "unknown key" in str(err.value)


def test_missing_required_list(rules_dir: Path) -> None:
    _replace(rules_dir / "phrases.en.yaml", "  verbs:\n", "  verbz:\n")
    with pytest.raises(RulesError):
        load_extraction_rules(rules_dir)


def test_missing_phrase_files(rules_dir: Path) -> None:
    for path in rules_dir.glob("phrases.*.yaml"):
        path.unlink()
    with pytest.raises(RulesError):
        load_extraction_rules(rules_dir)


def test_yaml_booleans_are_caught(rules_dir: Path) -> None:
    # YAML 1.1 reads a bare `no` as false: the loader must say so, not crash later
    _replace(rules_dir / "phrases.en.yaml", "    - 'no'\n", "    - no\n")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "phrases.en.yaml:" in str(err.value)
    assert "quote it" in str(err.value)


def test_a_new_phrase_is_data_not_code(rules_dir: Path) -> None:
    """A support engineer adds a checking verb to rules/grammar.yaml (README, "Rules are
    data"): the sentence that used it now confirms; nothing else had to change."""
    text = "Het legitimatiebewijs is gescand."
    request = extract_text(text, load_extraction_rules(rules_dir), frozenset())
    assert not request.identity_verified
    assert request.stopped_at.get(Item.IDENTITY_VERIFIED) == "gescand"
    _replace(rules_dir / "grammar.yaml", "  check_word_nl: [", "  check_word_nl: [gescand, ")
    assert extract_text(text, load_extraction_rules(rules_dir), frozenset()).identity_verified


def test_a_grammar_reference_to_no_class_names_the_line(rules_dir: Path) -> None:
    _replace(rules_dir / "grammar.yaml", "  check_pp_nl: [", "  check_pp_nl: [<no_such_class>, ")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "grammar.yaml:" in str(err.value) and "unknown class <no_such_class>" in str(err.value)


def test_a_word_list_entry_of_two_words_names_the_line(rules_dir: Path) -> None:
    """"mw." is two words ("mw" and "."): in a word list it would make every full stop a
    context word, so loading refuses it with the file and line."""
    _replace(rules_dir / "grammar.yaml", "account_context: [", "account_context: [mw., ")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "grammar.yaml:" in str(err.value) and "'mw.' is not one word" in str(err.value)


def test_upper_case_pattern_is_refused(rules_dir: Path) -> None:
    # text is lower-cased before matching: an upper-case rule would silently never match
    _replace(rules_dir / "phrases.nl.yaml", "    - brp\n", "    - BRP\n")
    with pytest.raises(RulesError) as err:
        load_extraction_rules(rules_dir)
    assert "lower case" in str(err.value)
