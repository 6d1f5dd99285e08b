"""Storage adapter: SQLAlchemy 2 models, engine factory, the unit of work with its stores, read
models and Alembic migrations."""

from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.executions import ExecutionClaim
from reset_mailbot.adapters.db.messages import DuplicateMessage
from reset_mailbot.adapters.db.outbox import OutboxClaim
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork

__all__ = [
    "DuplicateMessage",
    "ExecutionClaim",
    "OutboxClaim",
    "Store",
    "UnitOfWork",
    "create_db_engine",
]
