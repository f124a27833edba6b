"""SQL and transactions. One module per aggregate; the caller chooses the pool."""

from storage.database import Database, Executor, open_database, transaction
from storage.replica import ReadPool

__all__ = ["Database", "Executor", "ReadPool", "open_database", "transaction"]
