"""Loading YAML rule files into typed, validated pydantic objects.

Support staff edit these files, so a mistake must come back as one line naming the file, the
line and the problem, never as a traceback. The line is found by walking the YAML node tree that
PyYAML composes alongside the data, following the location pydantic reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class RulesError(Exception):
    """A rule file is missing, unreadable, not YAML or does not validate."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Follow a pydantic error location through the YAML node tree, as deep as it goes."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if child is None:
                # an unknown key: point at the key itself
                keynode = next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
                return keynode or node
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            return node
    return node


# libyaml's loader when PyYAML was built with it (the wheels are): same safe subset, ~10x faster
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it as `model`, raising RulesError with a line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RulesError(path, "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(path, f"cannot read: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise RulesError(path, f"invalid YAML: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise RulesError(path, f"invalid YAML: {exc}") from exc
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key says more than the "field required" it usually comes with
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        # the node tree (for the line number) is only worth building for the error message
        target = _node_at(yaml.compose(text, Loader=_SAFE_LOADER), tuple(first["loc"]))
        line = target.start_mark.line + 1 if target is not None else None
        problems = "; ".join(_describe(e) for e in errors[:3])
        extra = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise RulesError(path, problems + extra, line) from exc


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


# ---------------------------------------------------------------------------------------------
# The whole rule set

import functools  # noqa: E402

from reset_mailbot.domain.extraction import ExtractionRules  # noqa: E402
from reset_mailbot.domain.extraction.grammar import GrammarRules  # noqa: E402
from reset_mailbot.domain.reply_templates import ReplyTemplates  # noqa: E402
from reset_mailbot.domain.rules import (  # noqa: E402
    AutomaticRules,
    GroupMailboxRules,
    MunicipalityList,
    RuleSet,
)

__all__ = ["RuleSet", "load_rules", "packaged_rules_dir", "packaged_templates"]


def packaged_rules_dir() -> Path:
    """The rules shipped with the package: inside a wheel, or the repository's rules/ folder."""
    here = Path(__file__).resolve().parent
    bundled = here / "_rules"
    if bundled.is_dir():
        return bundled
    return here.parent.parent / "rules"


def load_grammar(path: Path) -> GrammarRules:
    """rules/grammar.yaml: validated as a model, then every class and slot reference checked,
    the first problem reported with its line."""
    grammar = load_yaml_model(path, GrammarRules)
    problems = grammar.problems()
    if problems:
        loc, problem = problems[0]
        text = path.read_text(encoding="utf-8")
        node = _node_at(yaml.compose(text, Loader=_SAFE_LOADER), loc)
        line = node.start_mark.line + 1 if node is not None else None
        where = ".".join(str(p) for p in loc)
        raise RulesError(path, f"{where}: {problem}", line)
    return grammar


def load_extraction_rules(rules_dir: Path) -> ExtractionRules:
    """rules/extraction.yaml plus every rules/phrases.<lang>.yaml, validated and compiled once."""
    from reset_mailbot.domain.extraction.rules import LayoutRules, PhraseRules

    layout_path = rules_dir / "extraction.yaml"
    phrase_paths = sorted(rules_dir.glob("phrases.*.yaml"))
    if not phrase_paths:
        raise RulesError(rules_dir / "phrases.nl.yaml", "file not found (no phrases.*.yaml)")
    layout = load_yaml_model(layout_path, LayoutRules)
    phrases = [load_yaml_model(path, PhraseRules) for path in phrase_paths]
    grammar_path = rules_dir / "grammar.yaml"
    grammar = load_grammar(grammar_path)  # required: no silent fall-back to phrase matching
    rules = ExtractionRules(
        phrases=phrases,
        layout=layout,
        grammar=grammar,
        sources=tuple(str(p) for p in (layout_path, *phrase_paths, grammar_path)),
    )
    try:
        _ = rules.compiled  # alternations of valid patterns can still fail to combine
    except re.error as exc:
        raise RulesError(rules_dir, f"extraction rules do not compile together: {exc}") from exc
    return rules


def load_reply_templates(rules_dir: Path) -> ReplyTemplates:
    """Every rules/templates/*.j2, compiled and test-rendered once (domain/replies.py).

    A rules folder without a templates/ folder uses the packaged templates, so an operator who
    keeps only their own YAML files still gets replies; a templates/ folder that exists must be
    complete. Errors name the file and the line, as for the YAML files.
    """
    from reset_mailbot.domain.reply_templates import TemplateError

    folder = rules_dir / "templates"
    if not folder.is_dir():
        folder = packaged_rules_dir() / "templates"
    sources: dict[str, str] = {}
    paths: dict[str, str] = {}
    for path in sorted(folder.glob("*.j2")):
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(path, f"cannot read: {exc}") from exc
        paths[path.name] = str(path)
    try:
        return _compiled_templates(tuple((n, sources[n], paths[n]) for n in sorted(sources)))
    except TemplateError as exc:
        shown = exc.name if "/" in exc.name else str(folder / exc.name)
        raise RulesError(shown, exc.problem, exc.line) from exc


@functools.lru_cache(maxsize=8)
def _compiled_templates(files: tuple[tuple[str, str, str], ...]) -> ReplyTemplates:
    """Compile and check (name, text, path) triples; cached because compiling all templates
    takes a few hundred milliseconds and rules are loaded again by every `load_rules`."""
    from reset_mailbot.domain.replies import LANGUAGES, ReplyKind, check_templates

    templates = ReplyTemplates.compile(
        {name: text for name, text, _ in files},
        kinds=[k.value for k in ReplyKind],
        languages=LANGUAGES,
        paths={name: path for name, _, path in files},
    )
    check_templates(templates)
    return templates


def load_rules(rules_dir: Path | None = None, municipalities: Path | None = None) -> RuleSet:
    rules_dir = rules_dir or packaged_rules_dir()
    muni_path = municipalities or rules_dir / "municipalities.yaml"
    group_path = rules_dir / "group_mailboxes.yaml"
    auto_path = rules_dir / "automatic.yaml"
    return RuleSet(
        municipalities=load_yaml_model(muni_path, MunicipalityList),
        group_mailboxes=load_yaml_model(group_path, GroupMailboxRules),
        automatic=load_yaml_model(auto_path, AutomaticRules),
        extraction=load_extraction_rules(rules_dir),
        sources=(str(muni_path), str(group_path), str(auto_path)),
        templates=load_reply_templates(rules_dir),
    )


@functools.cache
def packaged_templates() -> ReplyTemplates:
    """The reply templates shipped with the package, loaded and checked once."""
    return load_reply_templates(packaged_rules_dir())
