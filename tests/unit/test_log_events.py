"""docs/log-events.md stays true: every event the code logs is documented, and vice versa.

Support builds alerts on these names (issue #6 item 6), so an undocumented or renamed event is
a silent break. Events are found with the AST (a literal first argument, both branches of a
conditional, the values of a mapping the event is looked up in, a variable assigned one of
those) and, as a cross-check, with the plain regex `log\\.\\w+\\(\\s*"(\\w+)"`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "reset_mailbot"
DOC = ROOT / "docs" / "log-events.md"
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
LOG_CALL_RE = re.compile(r"\blog\.\w+\(\s*\"(\w+)\"")
DOC_ROW_RE = re.compile(r"^\|\s*`(\w+)`\s*\|")
PLANNED_HEADING = "## Planned"
# Event names computed at run time, by the expression logged: the inbox logs why a complete
# request is held for a person under the hold's reason code (service/limits.hold_reason).
DYNAMIC: dict[str, set[str]] = {"hold.reason": {"rate_limited", "staff_account"}}


Names = dict[str, list[ast.expr]]


def _assignments(node: ast.AST) -> Names:
    assigned: Names = {}
    for child in ast.walk(node):
        if isinstance(child, ast.Assign):
            for target in child.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(child.value)
    return assigned


def _strings(expr: ast.expr, local: Names, module: Names) -> set[str]:
    """The event names an expression can evaluate to."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _strings(expr.body, local, module) | _strings(expr.orelse, local, module)
    if isinstance(expr, ast.Dict):
        return set().union(*(_strings(v, local, module) for v in expr.values if v))
    if isinstance(expr, ast.Subscript):
        return _strings(expr.value, local, module)
    if isinstance(expr, ast.Name):
        values = local.get(expr.id) or module.get(expr.id) or []
        return set().union(*(_strings(v, {}, module) for v in values))
    return set()


def _argument_values(tree: ast.Module, func: ast.FunctionDef, name: str) -> list[ast.expr]:
    """What the module's callers of `func` pass for its parameter `name` (e.g. sla's `kind`)."""
    params = [a.arg for a in func.args.args]
    if name not in params:
        return []
    index = params.index(name)
    values: list[ast.expr] = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id == func.name:
            if index < len(call.args):
                values.append(call.args[index])
            values += [k.value for k in call.keywords if k.arg == name]
    return values


def _is_logger(expr: ast.expr) -> bool:
    text = ast.unparse(expr)
    return text in {"log", "logger", "self.log", "self.logger"} or "get_logger(" in text


def _log_calls(func: ast.AST) -> list[ast.Call]:
    calls = []
    for node in ast.walk(func):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        callee = node.func
        method = isinstance(callee, ast.Attribute) and callee.attr in LEVELS and _is_logger(
            callee.value)
        chosen = isinstance(callee, ast.Name) and callee.id == "logger"  # logger = log.x if ..
        if method or chosen:
            calls.append(node)
    return calls


def code_events() -> dict[str, set[str]]:
    """Event name -> the files that log it. Fails on a log call it cannot resolve."""
    found: dict[str, set[str]] = {}
    unresolved: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        module = {k: v for k, v in _assignments(tree).items() if k.isupper()}
        where = str(path.relative_to(ROOT))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            local = _assignments(func)
            for call in _log_calls(func):
                first = call.args[0]
                names = _strings(first, local, module) | DYNAMIC.get(ast.unparse(first), set())
                if not names and isinstance(first, ast.Name) and isinstance(
                        func, ast.FunctionDef):
                    for value in _argument_values(tree, func, first.id):
                        names |= _strings(value, {}, module)
                if not names:
                    unresolved.append(f"{where}:{call.lineno}")
                for name in names:
                    found.setdefault(name, set()).add(where)
        for name in LOG_CALL_RE.findall(source):
            found.setdefault(name, set()).add(where)
    assert not unresolved, f"log calls whose event name cannot be determined: {unresolved}"
    return found


def doc_events() -> tuple[set[str], set[str]]:
    """(documented events, events listed under "Planned" that no code logs yet)."""
    documented: set[str] = set()
    planned: set[str] = set()
    target: set[str] | None = None  # the common-fields table above the first section
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            target = planned if line.startswith(PLANNED_HEADING) else documented
        match = DOC_ROW_RE.match(line)
        if match and target is not None:
            target.add(match.group(1))
    return documented, planned


def test_the_finder_sees_the_known_shapes_of_log_calls() -> None:
    events = code_events()
    # a literal, a conditional (delivery: reply_failed/reply_retry), a mapping lookup
    # (delivery: execution results), `get_logger().info(...)` (bootstrap.log_decision)
    for name in ("poll_done", "reply_failed", "reply_retry", "reset_executed",
                 "execution_retry", "decision"):
        assert name in events, name
    assert "failed" not in events  # a state compared in the condition is not an event


def test_every_logged_event_is_documented() -> None:
    documented, planned = doc_events()
    missing = {name: sorted(files) for name, files in code_events().items()
               if name not in documented | planned}
    assert not missing, f"log events missing from docs/log-events.md: {missing}"


def test_every_documented_event_is_logged() -> None:
    documented, _planned = doc_events()
    stale = documented - set(code_events())
    assert not stale, f"docs/log-events.md documents events no code logs: {sorted(stale)}"
