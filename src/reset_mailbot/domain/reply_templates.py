"""Reply templates: Jinja2 sources compiled once into a `ReplyTemplates` object. Pure: no I/O.

Support staff edit the wording in `rules/templates/` without touching code, so the files are
compiled when the rules are loaded (`rules_loader.load_reply_templates`) and every mistake is
reported there, with the file and the line, instead of when the first reply is due.

File names: `<kind>.<language>.<txt|html>.j2`, one per reply kind, language and part; names
that start with `_` are partials (layouts, shared phrases) for `{% extends %}`, `{% include %}`
and `{% import %}`. Any other name is refused, so a misspelt file cannot be silently ignored.

Templates run in Jinja2's sandbox (they are data, not code) with `StrictUndefined`, so a
misspelt variable fails loudly instead of leaving a gap in a reply. HTML templates (and only
those) autoescape: a sender-controlled subject or address can never become markup.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

Part = Literal["txt", "html"]
PARTS: tuple[Part, ...] = ("txt", "html")
_NAME_RE = re.compile(r"^(?P<kind>[a-z_]+)\.(?P<lang>[a-z]{2})\.(?P<part>txt|html)\.j2$")


class TemplateError(ValueError):
    """A template file is missing, unknown, does not compile or does not render."""

    def __init__(self, name: str, problem: str, line: int | None = None) -> None:
        self.name = name
        self.line = line
        self.problem = problem
        where = f"{name}:{line}" if line is not None else name
        super().__init__(f"{where}: {problem}")


def template_name(kind: str, language: str, part: Part) -> str:
    """The file name of one template, e.g. `incomplete.nl.txt.j2`."""
    return f"{kind}.{language}.{part}.j2"


def _autoescape(name: str | None) -> bool:
    return bool(name) and ".html" in str(name)


def _error_line(exc: BaseException, filenames: Mapping[str, str]) -> tuple[str | None, int | None]:
    """The template file and line a render error happened in (Jinja2 rewrites tracebacks)."""
    by_path = {path: name for name, path in filenames.items()}
    found: tuple[str | None, int | None] = (None, None)
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        name = by_path.get(tb.tb_frame.f_code.co_filename)
        if name is not None:
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class ReplyTemplates:
    """Compiled reply templates for a set of kinds and languages; render with `render`."""

    environment: SandboxedEnvironment
    names: frozenset[str]
    kinds: tuple[str, ...]
    languages: tuple[str, ...]
    paths: Mapping[str, str]  # template name -> where it came from, for error messages
    # how municipal staff reach Forus support ([replies] support_contact), shown in every
    # reply as `support_contact`; empty: the support address the reply comes from
    support_contact: str = ""

    @classmethod
    def compile(
        cls,
        sources: Mapping[str, str],
        *,
        kinds: Iterable[str],
        languages: Iterable[str],
        paths: Mapping[str, str] | None = None,
    ) -> ReplyTemplates:
        """Check names, presence of every kind x language x part, and syntax; compile all.

        `sources` maps file names to template text; `paths` maps them to the path to show in
        errors (defaults to the name).
        """
        kinds, languages = tuple(kinds), tuple(languages)
        shown = {name: (paths or {}).get(name, name) for name in sources}
        for name in sorted(sources):
            match = _NAME_RE.match(name)
            if name.startswith("_") and name.endswith(".j2"):
                continue
            if match is None:
                raise TemplateError(
                    shown[name],
                    "unexpected file name: use <kind>.<language>.<txt|html>.j2, or a name "
                    "starting with _ for a partial",
                )
            if match["kind"] not in kinds:
                raise TemplateError(
                    shown[name], f"unknown reply kind {match['kind']!r} (known: {', '.join(kinds)})"
                )
            if match["lang"] not in languages:
                raise TemplateError(shown[name], f"unknown language {match['lang']!r}")
        missing = [
            template_name(kind, lang, part)
            for kind in kinds
            for lang in languages
            for part in PARTS
            if template_name(kind, lang, part) not in sources
        ]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise TemplateError(missing[0], f"template file not found{more}")

        def load(name: str) -> tuple[str, str, Any] | None:
            if name not in sources:
                return None
            return sources[name], shown[name], lambda: True

        environment = SandboxedEnvironment(
            loader=jinja2.FunctionLoader(load),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        for name in sorted(sources):
            try:
                environment.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                where = shown.get(exc.name or "", exc.filename or shown[name])
                raise TemplateError(where, exc.message or "syntax error", exc.lineno) from exc
        return cls(
            environment=environment,
            names=frozenset(sources),
            kinds=kinds,
            languages=languages,
            paths=shown,
        )

    def with_support_contact(self, support_contact: str) -> ReplyTemplates:
        """The same templates, telling municipal staff to reach support this way."""
        return dataclasses.replace(self, support_contact=" ".join(support_contact.split()))

    def render(self, kind: str, language: str, part: Part, context: Mapping[str, Any]) -> str:
        """Render one template; errors become TemplateError naming the file and line."""
        name = template_name(kind, language, part)
        if name not in self.names:
            raise TemplateError(name, "no such template")
        try:
            return self.environment.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            failed, line = _error_line(exc, self.paths)
            problem = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise TemplateError(failed or self.paths[name], problem, line) from exc
        except (TypeError, ValueError, LookupError, ArithmeticError, AttributeError) as exc:
            failed, line = _error_line(exc, self.paths)
            raise TemplateError(
                failed or self.paths[name], f"{type(exc).__name__}: {exc}", line
            ) from exc

    def summary(self) -> list[str]:
        """One line for `rules check`."""
        partials = sum(1 for name in self.names if name.startswith("_"))
        return [
            f"reply templates: {len(self.kinds)} kinds x {len(self.languages)} languages "
            f"({', '.join(self.languages)}) x text+html, {partials} partials"
        ]
