"""Who may do what in the console: three roles that grow, viewer < operator < approver.

- viewer: read everything the CLI views show (requests, messages, replies, stats);
- operator: act on the day's work: manual reset done / failed, re-send a reply, reprocess;
- approver: four-eyes decisions (approve / deny), and everything an operator may do.

Roles come from configuration only (`[console] roles` by e-mail address, `role_groups` by a
group the identity provider or the proxy names), never from the identity provider's defaults:
a person the configuration does not name cannot log in at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    APPROVER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def parse_role(value: str) -> Role:
    return Role[value.strip().upper()]


@dataclass(frozen=True)
class Person:
    """A logged-in person: `identity` (their e-mail address, lower case) is what the audit log
    records as the actor, so an action is attributed to the same string whichever way they
    logged in."""

    identity: str
    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed


def role_for(identity: str, groups: Iterable[str], roles: Mapping[str, str],
             role_groups: Mapping[str, str]) -> Role | None:
    """The highest role the configuration gives this person, or None (no access)."""
    found: list[Role] = []
    who = " ".join(identity.split()).lower()
    if who and who in roles:
        found.append(parse_role(roles[who]))
    for group in groups:
        key = " ".join(str(group).split()).lower()
        if key in role_groups:
            found.append(parse_role(role_groups[key]))
    return max(found) if found else None
