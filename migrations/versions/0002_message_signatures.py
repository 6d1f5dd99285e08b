"""message_signatures: the DKIM signatures (b= hashes) of decided messages, for replays.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_signatures",
        sa.Column("signature", sa.String(length=80), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"],
            name=op.f("fk_message_signatures_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_message_signatures")),
    )
    op.create_index(op.f("ix_message_signatures_message_id"), "message_signatures",
                    ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_message_signatures_message_id"), table_name="message_signatures")
    op.drop_table("message_signatures")
