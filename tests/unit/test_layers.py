"""Where SQL may live (issue #13): import-linter (`make lint`) keeps SQLAlchemy imports inside
adapters/db; this keeps the session there too, so a query cannot slip into the service through
`uow.session`."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "reset_mailbot"
# the database session; `request.session` (the console's cookie session) is not one
SESSION = re.compile(r"(?<!request)\.session\b")


def test_no_session_outside_the_database_adapter() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if "adapters/db" not in path.as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if SESSION.search(line)
    ]
    assert offenders == []
