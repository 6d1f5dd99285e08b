"""Reply templates as files: loaded and checked once, errors name the file and the line."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reset_mailbot.domain.reasons import Item
from reset_mailbot.domain.replies import ReplyData, ReplyKind, render_reply
from reset_mailbot.domain.reply_templates import ReplyTemplates, TemplateError
from reset_mailbot.rules_loader import (
    RulesError,
    load_reply_templates,
    load_rules,
    packaged_rules_dir,
    packaged_templates,
)

TEMPLATES = packaged_templates()

NOW = datetime(2026, 11, 26, 8, 15, tzinfo=UTC)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_rules_dir(), target)
    return target


def _load_error(rules_dir: Path) -> RulesError:
    with pytest.raises(RulesError) as info:
        load_reply_templates(rules_dir)
    return info.value


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if fragment in line)


def test_packaged_templates_cover_every_kind_language_and_part() -> None:
    templates = load_reply_templates(packaged_rules_dir())
    assert set(templates.kinds) == {k.value for k in ReplyKind}
    assert templates.languages == ("nl", "en")
    for kind in ReplyKind:
        for language in ("nl", "en"):
            for part in ("txt", "html"):
                assert f"{kind.value}.{language}.{part}.j2" in templates.names
    assert templates.summary()[0].startswith("reply templates: 7 kinds x 2 languages")
    rules = load_rules()
    assert rules.templates is not None and rules.templates.names == templates.names


def test_missing_template_file_is_named(rules_dir: Path) -> None:
    (rules_dir / "templates" / "failed.en.html.j2").unlink()
    error = _load_error(rules_dir)
    assert error.path == str(rules_dir / "templates" / "failed.en.html.j2")
    assert "not found" in error.problem


def test_syntax_error_names_file_and_line(rules_dir: Path) -> None:
    path = rules_dir / "templates" / "confirmation.nl.txt.j2"
    _edit(path, "{% if case_reference %}", "{% if case_reference %}{% endfor %}")
    error = _load_error(rules_dir)
    assert error.path == str(path)
    assert error.line == _line_of(path, "{% endfor %}")
    assert "endfor" in error.problem


def test_syntax_error_in_a_partial_names_the_partial(rules_dir: Path) -> None:
    path = rules_dir / "templates" / "_layout.en.txt.j2"
    _edit(path, "Kind regards,", "Kind regards, {{ 1 + }}")
    error = _load_error(rules_dir)
    assert error.path == str(path)
    assert error.line == _line_of(path, "Kind regards,")


def test_misspelt_variable_names_file_and_line(rules_dir: Path) -> None:
    path = rules_dir / "templates" / "denied.en.html.j2"
    _edit(path, "{{ denial_reason", "{{ denial_reasn")
    error = _load_error(rules_dir)
    assert error.path == str(path)
    assert error.line == _line_of(path, "denial_reasn")
    assert "denial_reasn" in error.problem and "undefined" in error.problem


def test_missing_phrase_for_a_detail_is_found_at_load(rules_dir: Path) -> None:
    path = rules_dir / "templates" / "_phrases.nl.j2"
    _edit(path, '  "identity_verified":', '  "identity_verifed":')
    error = _load_error(rules_dir)
    assert "incomplete.nl" in error.path  # where the lookup failed
    assert error.line is not None
    assert "identity_verified" in error.problem


def test_unknown_file_name_is_refused(rules_dir: Path) -> None:
    shutil.copy(
        rules_dir / "templates" / "failed.nl.txt.j2", rules_dir / "templates" / "faild.nl.txt.j2"
    )
    error = _load_error(rules_dir)
    assert error.path.endswith("faild.nl.txt.j2")
    assert "unknown reply kind" in error.problem


def test_the_sandbox_refuses_python_internals(rules_dir: Path) -> None:
    path = rules_dir / "templates" / "denied.nl.txt.j2"
    _edit(path, "Reden:", "{{ ''.__class__.__mro__[1].__subclasses__() }} Reden:")
    error = _load_error(rules_dir)
    assert error.path == str(path)


def test_edited_wording_is_used_and_html_only_is_escaped(rules_dir: Path) -> None:
    _edit(
        rules_dir / "templates" / "confirmation.nl.txt.j2",
        "De tweefactorauthenticatie (2FA) van het onderstaande account is hersteld.",
        "Gelukt <3 voor {{ account_email }}.",
    )
    _edit(
        rules_dir / "templates" / "confirmation.nl.html.j2",
        "<p>De tweefactorauthenticatie (2FA) van het onderstaande account is hersteld.</p>",
        "<p>Gelukt voor {{ account_email }}.</p>",
    )
    templates = load_rules(rules_dir).templates
    raw = render_reply(
        "confirmation",
        ReplyData(recipient="j@utrecht.nl", account_email="a<b>@x.nl"),
        support_address="support@forus.io",
        now=NOW,
        reply_message_id="<rmb.1@forus.io>",
        templates=templates,
    ).rfc822
    import email
    from email.policy import default

    msg = email.message_from_bytes(raw, policy=default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Gelukt <3 voor a<b>@x.nl." in text
    assert "Gelukt voor a&lt;b&gt;@x.nl." in html


def test_rules_dir_without_templates_uses_the_packaged_ones(rules_dir: Path) -> None:
    shutil.rmtree(rules_dir / "templates")
    templates = load_reply_templates(rules_dir)
    assert "confirmation.nl.txt.j2" in templates.names


def test_compile_from_strings_without_files() -> None:
    sources = {
        f"{kind}.nl.{part}.j2": f"{kind} {{{{ account_email }}}}"
        for kind in ("a", "b")
        for part in ("txt", "html")
    }
    templates = ReplyTemplates.compile(sources, kinds=["a", "b"], languages=["nl"])
    assert templates.render("a", "nl", "html", {"account_email": "<x>"}) == "a &lt;x&gt;"
    assert templates.render("a", "nl", "txt", {"account_email": "<x>"}) == "a <x>"
    with pytest.raises(TemplateError, match=r"a\.nl\.txt\.j2:1"):
        templates.render("a", "nl", "txt", {})
    with pytest.raises(TemplateError, match="no such template"):
        templates.render("c", "nl", "txt", {})


def test_an_incomplete_reply_still_needs_missing_items() -> None:
    from reset_mailbot.domain.replies import ReplyError

    with pytest.raises(ReplyError):
        render_reply(
            "incomplete",
            ReplyData(recipient="j@utrecht.nl", missing=()),
            support_address="support@forus.io",
            now=NOW,
            reply_message_id="<rmb.1@forus.io>",
            templates=TEMPLATES,
        )
    assert Item.ACCOUNT_EMAIL.value == "account_email"  # the key _phrases.*.j2 use
