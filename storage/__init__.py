"""SQL and transactions. One module per aggregate; the caller chooses the pool."""

from storage.database import Database, Executor, ReadPool, open_database, transaction

__all__ = ["Database", "Executor", "ReadPool", "open_database", "transaction"]
