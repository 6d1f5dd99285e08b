"""Storage adapter: SQLAlchemy 2 models, engine factory, repository and Alembic migrations."""

from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.repository import (
    DuplicateMessage,
    ExecutionClaim,
    OutboxClaim,
    Store,
    UnitOfWork,
)

__all__ = [
    "DuplicateMessage",
    "ExecutionClaim",
    "OutboxClaim",
    "Store",
    "UnitOfWork",
    "create_db_engine",
]
