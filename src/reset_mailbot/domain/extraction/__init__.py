"""Reading the request out of the sender's own new text (policy, "Required items").

Interim: until the extraction issue (#3) lands, nothing is extracted, so an authentic and
authorised message is `incomplete` with all three items missing (as issue #2 specifies).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from reset_mailbot.domain.message import ParsedMessage
from reset_mailbot.domain.models import ResetRequest


class ExtractionRules(BaseModel):
    """Phrase, label and quote-cutting rules (rules/phrases.*.yaml); filled by issue #3."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def extract_request(
    message: ParsedMessage, rules: ExtractionRules, excluded_addresses: frozenset[str]
) -> ResetRequest:
    """Extract the request items from `message`.

    `excluded_addresses` (normalised) are never account candidates: the sender, To/Cc
    recipients and our own support address.
    """
    return ResetRequest()
