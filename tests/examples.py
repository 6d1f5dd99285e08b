"""The shipped sample messages (`reset_mailbot/demo_data`, what `reset-mailbot demo` shows) and
their expected decisions: one copy of each example, read by the tests and the demo alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reset_mailbot.demo import demo_dir

EXAMPLES: Path = demo_dir()
EXPECTED: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "examples_expected.json").read_text(
        encoding="utf-8"))
