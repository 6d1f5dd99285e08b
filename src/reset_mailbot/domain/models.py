"""Pydantic models of what the core produces: the request read from a message, and the decision.

These are the shapes stored in the database (as JSON), printed by `check --json` and logged, so
their field names are a contract.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode


class DkimStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"


class SignatureVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    TEMPERROR = "temperror"


class SignatureResult(BaseModel):
    """The verdict on one DKIM-Signature header, kept so a decision can be explained."""

    model_config = ConfigDict(frozen=True)

    index: int
    domain: str | None
    selector: str | None
    algorithm: str | None
    verdict: SignatureVerdict
    aligned: bool
    detail: str = ""


class AuthenticationResult(BaseModel):
    dkim: DkimStatus = DkimStatus.NONE
    signing_domain: str | None = None
    aligned: bool = False
    signatures: list[SignatureResult] = Field(default_factory=list)
    # Of the aligned passing signature (empty otherwise): the header names its h= covers, its
    # t= (seconds since the epoch), and the b= hashes of every aligned signature in the message
    # (a replay of the same signed message carries them again, whatever its Message-ID).
    signed_headers: list[str] = Field(default_factory=list)
    signed_at: int | None = None
    replay_keys: list[str] = Field(default_factory=list)
    # request tags ("R-...") of our replies in a signed Subject: thread by them
    subject_request_ids: list[str] = Field(default_factory=list)


class SenderInfo(BaseModel):
    address: str | None = None
    municipality: str | None = None
    # The From display name, for people and the executor (HTTP contract requested_by.name)
    # only: it never identifies the sender (policy, Authentication 2).
    name: str | None = None


class Evidence(BaseModel):
    """The sentence or template line that satisfied (or refused) an item."""

    item: Item
    text: str
    kind: str = "sentence"  # sentence | template | label | mailto
    rule: str | None = None  # the rules/grammar.yaml form that matched ("nl:passive")


class ResetRequest(BaseModel):
    """What the sender's own new text asks for (policy, "Required items")."""

    account_email: str | None = None
    identity_verified: bool = False
    reset_instructed: bool = False
    case_reference: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    missing_details: dict[Item, MissingDetail] = Field(default_factory=dict)
    # the word that stopped a confirmation, per missing item (the reply names it)
    stopped_at: dict[Item, str] = Field(default_factory=dict)

    @property
    def missing(self) -> list[Item]:
        present = {
            Item.ACCOUNT_EMAIL: self.account_email is not None,
            Item.IDENTITY_VERIFIED: self.identity_verified,
            Item.RESET_INSTRUCTED: self.reset_instructed,
        }
        return [item for item, ok in present.items() if not ok]


class Decision(BaseModel):
    """The outcome of one message and everything needed to explain it afterwards."""

    message_id: str | None
    message_key: str
    outcome: Outcome
    reasons: list[ReasonCode] = Field(default_factory=list)
    missing: list[Item] = Field(default_factory=list)
    reply: bool = False
    sender: SenderInfo = Field(default_factory=SenderInfo)
    authentication: AuthenticationResult = Field(default_factory=AuthenticationResult)
    request: ResetRequest = Field(default_factory=ResetRequest)
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    subject: str = ""
    detail: str = ""
    # b= hashes of the aligned signatures: the same signed message again is a duplicate
    replay_keys: list[str] = Field(default_factory=list)
    # request tags ("R-...") of our replies in a signed Subject: thread by them
    subject_request_ids: list[str] = Field(default_factory=list)

    def check_json(self) -> dict[str, object]:
        """The `check --json` shape (issue #2), plus evidence (issue #3)."""
        return {
            "message_id": self.message_id,
            "outcome": self.outcome.value,
            "reasons": [r.value for r in self.reasons],
            "missing": [m.value for m in self.missing],
            "reply": self.reply,
            "sender": self.sender.model_dump(),
            "authentication": {
                "dkim": self.authentication.dkim.value,
                "signing_domain": self.authentication.signing_domain,
                "aligned": self.authentication.aligned,
            },
            "request": {
                "account_email": self.request.account_email,
                "identity_verified": self.request.identity_verified,
                "reset_instructed": self.request.reset_instructed,
                "case_reference": self.request.case_reference,
            },
            "evidence": {e.item.value: e.text for e in self.request.evidence},
            "evidence_rules": {e.item.value: e.rule for e in self.request.evidence if e.rule},
            "missing_details": {k.value: v.value for k, v in self.request.missing_details.items()},
            "detail": self.detail,
        }
