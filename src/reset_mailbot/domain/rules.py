"""Typed rule objects the decision core consults. Pure data: loading from YAML is in
rules_loader (an adapter), which builds the RuleSet and hands it in.

Each model validates what a support employee could get wrong (a domain that is not a domain, a
regular expression that does not compile, a duplicate domain across municipalities) at load time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address, normalise_domain
from reset_mailbot.domain.extraction import ExtractionRules
from reset_mailbot.domain.reasons import ReasonCode
from reset_mailbot.domain.reply_templates import ReplyTemplates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Municipality(_Strict):
    name: str = Field(min_length=1)
    domains: list[str] = Field(min_length=1)
    contacts: list[str] = Field(default_factory=list)

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            try:
                out.append(normalise_domain(domain))
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from exc
        return out

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, value: list[str]) -> list[str]:
        out = []
        for address in value:
            try:
                out.append(normalise_address(address))
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from exc
        return out

    @model_validator(mode="after")
    def _contacts_in_own_domains(self) -> Municipality:
        for contact in self.contacts:
            if contact.rpartition("@")[2] not in self.domains:
                raise ValueError(f"contact {contact} is not in the municipality's domains")
        return self


class MunicipalityList(_Strict):
    municipalities: list[Municipality] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_domains(self) -> MunicipalityList:
        seen: dict[str, str] = {}
        for muni in self.municipalities:
            for domain in muni.domains:
                if domain in seen and seen[domain] != muni.name:
                    raise ValueError(f"domain {domain} listed for {seen[domain]} and {muni.name}")
                seen[domain] = muni.name
        return self

    @cached_property
    def by_domain(self) -> dict[str, Municipality]:
        return {d: m for m in self.municipalities for d in m.domains}


class GroupMailboxRules(_Strict):
    """Local parts that belong to a group or role mailbox rather than one person."""

    exact: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)

    @field_validator("exact", "prefixes", "tokens")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("empty pattern")
        return [v.strip().lower() for v in value]

    def matches(self, local_part: str) -> str | None:
        """The pattern that makes `local_part` a group mailbox, or None."""
        local = local_part.lower().split("+", 1)[0]
        if local in self.exact:
            return local
        for prefix in self.prefixes:
            if local.startswith(prefix):
                return prefix + "*"
        parts = [p for p in re.split(r"[._\-]", local) if p]
        for token in self.tokens:
            if token in parts:
                return token
        return None


class HeaderRule(_Strict):
    """A header whose presence (or value matching `pattern`) marks a message as automatic."""

    header: str = Field(min_length=1)
    pattern: str = ".*"
    reason: ReasonCode
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"regular expression does not compile: {exc}") from exc
        return value

    @field_validator("reason")
    @classmethod
    def _automatic_reason(cls, value: ReasonCode) -> ReasonCode:
        allowed = {
            ReasonCode.AUTO_SUBMITTED,
            ReasonCode.BOUNCE,
            ReasonCode.MAILING_LIST,
            ReasonCode.OWN_MESSAGE,
        }
        if value not in allowed:
            raise ValueError(f"reason must be one of {sorted(a.value for a in allowed)}")
        return value

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE | re.DOTALL)


class AutomaticRules(_Strict):
    headers: list[HeaderRule] = Field(default_factory=list)
    report_content_types: list[str] = Field(default_factory=list)
    bounce_local_parts: list[str] = Field(default_factory=list)

    @field_validator("report_content_types", "bounce_local_parts")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


@dataclass(frozen=True)
class RuleSet:
    """Everything the decision core consults, loaded and validated together by an adapter
    (rules_loader.load_rules) and handed in: the core reads no files."""

    municipalities: MunicipalityList
    group_mailboxes: GroupMailboxRules
    automatic: AutomaticRules
    extraction: ExtractionRules
    templates: ReplyTemplates
    sources: tuple[str, ...] = ()
