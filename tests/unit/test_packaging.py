"""What the wheel carries and what the package declares (issue #13, "packaging drift").

The wheel is built from the checkout with hatchling, the build backend pyproject names, so an
installed reset-mailbot (or the Docker image) has its rules and its migrations without a
checkout. The declared dependencies are exactly the third-party distributions `src/` imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    [built] = out.glob("reset_mailbot-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_the_migrations_and_the_rules(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    versions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert versions, "the Alembic tree lives in the top-level migrations/"
    for name in ("env.py", "script.py.mako", *(f"versions/{v}" for v in versions)):
        assert f"reset_mailbot/_migrations/{name}" in names
    rules = sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
    assert rules
    for name in rules:
        assert f"reset_mailbot/_rules/{name}" in names


def test_the_wheel_carries_no_test_code(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert not top & {"tests", "bench", "scripts"}, top
    assert not any("/tests/" in name or name.startswith("conftest") for name in wheel.namelist())


def _third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in src/ that are neither ours nor the stdlib."""
    found: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    ours = {"reset_mailbot", "reset_mailbot_testing"}
    return {m for m in found - ours if m not in sys.stdlib_module_names}


def _distributions(modules: set[str]) -> set[str]:
    owners = packages_distributions()
    return {owners[m][0].lower().replace("_", "-") for m in modules if m in owners}


def test_every_import_is_declared_and_every_declaration_imported() -> None:
    declared = {Requirement(r).name.lower().replace("_", "-")
                for r in PYPROJECT["project"]["dependencies"]}
    dev = {Requirement(r).name.lower().replace("_", "-")
           for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    modules = _third_party_imports()
    unknown = {m for m in modules if m not in packages_distributions()}
    assert not unknown, f"imported but not installed: {unknown}"
    imported = _distributions(modules)
    # reset_mailbot_testing (the stand-ins for the demo and the tests) may use dev tools
    assert imported - declared <= dev, f"imported, not declared: {imported - declared - dev}"
    # psycopg and pymysql are SQLAlchemy drivers, loaded by URL, never imported by name;
    # Starlette parses forms with python-multipart and signs its session cookie with
    # itsdangerous, and authlib's Starlette client speaks HTTP with httpx2: each is imported by
    # that library, not by us
    drivers = {"psycopg", "pymysql", "python-multipart", "itsdangerous", "httpx2"}
    assert declared - imported - drivers == set(), (
        f"declared, never imported: {declared - imported - drivers}")
