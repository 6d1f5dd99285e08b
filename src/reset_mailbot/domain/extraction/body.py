"""Choosing and decoding the body the sender wrote (issue #3, item 1).

text/plain when it is real, otherwise text converted from the HTML part. Attachments and
attached messages (message/rfc822, forwarded as attachment) are never read. Undecodable bytes are
replaced, and nothing here raises: a broken part gives less text, never an exception.
"""

from __future__ import annotations

import codecs
import email.message
import re
from dataclasses import dataclass

from reset_mailbot.domain.extraction.html_text import html_to_text

# Bodies beyond this are hostile or pasted logs; a request is a few lines.
MAX_BODY_CHARS = 200_000
MAX_PARTS = 100

# windows-1252 is a superset of latin-1 for every printable character, and mislabelled
# windows-1252 (curly quotes, euro sign) is the common case in municipal mail.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "windows-1252": "cp1252",
    "cp-1252": "cp1252",
    "x-user-defined": "cp1252",
}
_LETTERS = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class Body:
    text: str
    source: str  # plain | html | none


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset (latin-1 read as windows-1252); never raises."""
    name = (charset or "").strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the name ("utf-8\x00")
        name = "utf-8"
    try:
        return data.decode(name, errors="replace")
    except Exception:  # a codec that raises on its own (never seen, never fatal)
        return data.decode("utf-8", errors="replace")


def _is_attachment(part: email.message.Message) -> bool:
    try:
        disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
        if disposition == "attachment":
            return True
        filename = part.get_param("filename", header="content-disposition")
        return bool(part.get_param("name") or filename)
    except Exception:
        return True


def _part_text(part: email.message.Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        if not isinstance(raw, str):
            return ""
        payload = raw.encode("utf-8", "surrogateescape")
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload[: MAX_BODY_CHARS * 4], charset)


def _unflowed(part: email.message.Message, text: str) -> str:
    """Undo format=flowed (RFC 3676) soft line breaks, as Apple Mail and Thunderbird send."""
    try:
        if (part.get_param("format") or "").lower() != "flowed":
            return text
        delsp = (part.get_param("delsp") or "").lower() == "yes"
    except Exception:
        return text
    out: list[str] = []
    carry = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):  # space-stuffed
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            carry += line[:-1] if delsp else line
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return "\n".join(out)


def _content_type(part: email.message.Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "text/plain"


def _is_stub(plain: str, stub: re.Pattern[str] | None) -> bool:
    """A plain part that is empty or only points to the HTML version."""
    letters = _LETTERS.findall(plain[:2000])
    if len(letters) < 3:
        return True
    return bool(stub and len(plain) < 400 and stub.search(plain.lower()))


def _select(
    part: email.message.Message, stub: re.Pattern[str] | None, budget: list[int]
) -> tuple[str, str]:
    """(text, source) of one MIME node, recursively; alternatives prefer real text/plain."""
    budget[0] -= 1
    if budget[0] < 0:
        return "", "none"
    ctype = _content_type(part)
    if part.is_multipart():
        try:
            children = part.get_payload()
        except Exception:
            return "", "none"
        if not isinstance(children, list):
            return "", "none"
        if ctype == "multipart/alternative":
            plain = next(
                (c for c in children if _content_type(c) == "text/plain" and not _is_attachment(c)),
                None,
            )
            html = next(
                (c for c in children if _content_type(c) == "text/html" and not _is_attachment(c)),
                None,
            )
            nested = [c for c in children if c.is_multipart()]
            if plain is not None:
                text = _unflowed(plain, _part_text(plain))
                if not _is_stub(text, stub) or (html is None and not nested):
                    return text, "plain"
            if html is not None:
                return html_to_text(_part_text(html)), "html"
            for child in nested:
                text, source = _select(child, stub, budget)
                if text.strip():
                    return text, source
            return "", "none"
        # mixed / related / signed: the readable parts in order, attachments skipped
        texts: list[str] = []
        sources: list[str] = []
        for child in children:
            if _is_attachment(child) or _content_type(child).startswith("message/"):
                continue
            text, source = _select(child, stub, budget)
            if text.strip():
                texts.append(text)
                sources.append(source)
            if sum(len(t) for t in texts) > MAX_BODY_CHARS:
                break
        return "\n\n".join(texts), (sources[0] if sources else "none")
    if _is_attachment(part):
        return "", "none"
    if ctype == "text/plain":
        return _unflowed(part, _part_text(part)), "plain"
    if ctype == "text/html":
        return html_to_text(_part_text(part)), "html"
    return "", "none"


def body_text(message: email.message.Message | None, stub: re.Pattern[str] | None) -> Body:
    """The sender's body as text (still with quotes and signature). Never raises."""
    if message is None:
        return Body("", "none")
    try:
        text, source = _select(message, stub, [MAX_PARTS])
    except Exception:  # hostile MIME trees: extraction then finds nothing
        return Body("", "none")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Body(text[:MAX_BODY_CHARS], source)


def _first_alternative(message: email.message.Message) -> email.message.Message | None:
    """The multipart/alternative the body is read from (top level, or first in a mixed/related
    container), if any."""
    budget = MAX_PARTS
    stack = [message]
    while stack and budget > 0:
        budget -= 1
        part = stack.pop(0)
        ctype = _content_type(part)
        if ctype == "multipart/alternative":
            return part
        if part.is_multipart() and not _is_attachment(part):
            children = part.get_payload()
            if isinstance(children, list):
                stack = [c for c in children if c.is_multipart()] + stack
                if ctype != "multipart/related":
                    break  # only the first readable container holds the sender's text
    return None


def rendered_bodies(
    message: email.message.Message | None, stub: re.Pattern[str] | None
) -> list[Body]:
    """Both renderings when the sender's text comes as text/plain AND text/html (issue #12:
    an item counts only if both give it, so text hidden in one rendering cannot add to the
    other); otherwise the one body `body_text` reads. Never raises."""
    single = body_text(message, stub)
    if message is None:
        return [single]
    try:
        alternative = _first_alternative(message)
        if alternative is None:
            return [single]
        children = alternative.get_payload()
        if not isinstance(children, list):
            return [single]
        plain = next((c for c in children
                      if _content_type(c) == "text/plain" and not _is_attachment(c)), None)
        html = next((c for c in children
                     if _content_type(c) == "text/html" and not _is_attachment(c)), None)
        if plain is None or html is None:
            return [single]
        plain_text = _unflowed(plain, _part_text(plain))
        if _is_stub(plain_text, stub):
            return [single]
        html_body = html_to_text(_part_text(html))
        texts = [plain_text.replace("\r\n", "\n").replace("\r", "\n"),
                 html_body.replace("\r\n", "\n").replace("\r", "\n")]
        return [Body(texts[0][:MAX_BODY_CHARS], "plain"), Body(texts[1][:MAX_BODY_CHARS], "html")]
    except Exception:
        return [single]
