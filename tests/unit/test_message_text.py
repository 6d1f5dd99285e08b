"""readable_text: what a municipality wrote, quotes folded away (issue #17, item 4)."""

from __future__ import annotations

from pathlib import Path

from reset_mailbot.domain.message_text import MAX_CHARS, ReadableText, readable_text
from reset_mailbot.rules_loader import load_rules

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
RULES = load_rules().extraction


def _read(name: str) -> ReadableText:
    return readable_text((CORPUS / name).read_bytes(), RULES)


def test_outlook_reply_keeps_the_new_text_and_folds_the_van_verzonden_block() -> None:
    text = _read("088-reply_autoreply_adds_identity_outlook.eml")
    assert text.subject == "RE: Uw verzoek tot herstel 2FA is nog niet compleet"
    assert "aan de balie gecontroleerd met zijn paspoort" in text.new_text
    assert "Jan de Vries" in text.new_text  # the signature is what the sender wrote
    assert "Van: Forus Support" not in text.new_text
    assert text.quoted.startswith("Van: Forus Support")
    assert "Wij hebben uw verzoek" in text.quoted
    assert text.quoted_lines > 5
    assert not text.truncated


def test_gmail_reply_folds_the_op_schreef_quote() -> None:
    text = _read("089-reply_autoreply_adds_account_gmail.eml")
    assert "wilma.gerritsen@hetnet.nl" in text.new_text
    assert ">" not in text.new_text and "schreef" not in text.new_text
    assert text.quoted.startswith("Op do 12 nov 2026 om 16:22 schreef Forus Support")


def test_bottom_posted_reply_shows_the_text_below_the_quote() -> None:
    text = _read("183-nl_bottom_posted_reply.eml")
    assert text.new_text.startswith("De identiteit is inmiddels gecontroleerd")
    assert text.quoted.startswith("Op 18 nov. 2026 om 09:41 schreef Forus Support")


def test_html_only_message_is_read_as_text_with_nothing_quoted() -> None:
    text = _read("148-nl_outlook_html_only_complete.eml")
    assert "c.vanleeuwen@solcon.nl" in text.new_text and "<" not in text.new_text
    assert text.quoted == "" and text.quoted_lines == 0


def test_english_outlook_forward_and_encoded_subject() -> None:
    text = _read("105-reply_outlook_english_sent_block.eml")
    assert text.new_text and text.quoted
    assert "From:" not in text.new_text
    raw = (b"From: a@b.nl\r\nTo: support@forus.io\r\nSubject: =?utf-8?q?Herstel_2FA_=C3=A9?=\r\n"
           b"Message-ID: <x@b.nl>\r\n\r\nHallo\r\n\r\n> oud\r\n")
    plain = readable_text(raw, RULES)
    assert plain.subject == "Herstel 2FA é"
    assert (plain.new_text, plain.quoted) == ("Hallo", "> oud")


def test_without_rules_only_gt_quotes_are_folded() -> None:
    raw = b"From: a@b.nl\r\nSubject: x\r\n\r\nJa, graag.\r\n\r\n> Wij missen nog\r\n> iets\r\n"
    text = readable_text(raw)
    assert text.new_text == "Ja, graag."
    assert text.quoted_lines == 2


def test_bounded_and_never_raises() -> None:
    long = b"From: a@b.nl\r\nSubject: x\r\n\r\n" + b"woord " * 10_000 + b"\r\n"
    text = readable_text(long, RULES)
    assert text.truncated and len(text.new_text) <= MAX_CHARS
    for junk in (b"", b"\x00\xff" * 100, b"Subject: x\r\n", b"From: a@b.nl\r\n\r\n"):
        assert isinstance(readable_text(junk, RULES), ReadableText)
