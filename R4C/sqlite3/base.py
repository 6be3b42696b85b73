"""Django's SQLite backend, with the writers of each process queued for SQLite's write lock.

SQLite lets one connection write at a time. The others sleep in its busy handler and try
again, sleeping longer each time (up to 100 ms a try): under a burst, a thread that keeps
losing waits a second or more while later ones win. Here a thread first takes its process's
lock for the database, at a transaction's BEGIN (IMMEDIATE: SQLite's lock too, at once) or
around a write outside one, and holds it until the commit or the statement's end. The
threads of a process so write one at a time, each waiting on the lock without sleeping (not
in the order they came: a threading.Lock is not fair, but a released lock goes to a waiter
at once), and only writers of other processes (the worker, a second web process) meet the
busy handler. Measured (make bench, SQLite): without it, an order's p99 is 40-50 times its
p50 (0.4-0.8 s); with it, 2-3 times.
"""

import threading
from contextlib import contextmanager

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _writers(name: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _holding: threading.Lock | None = None

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=Cursor)
        cursor.database = self
        return cursor

    def take_write_lock(self) -> None:
        """Wait for this process's other writers, as long as SQLite's own timeout."""
        lock = _writers(str(self.settings_dict["NAME"]))
        if not lock.acquire(timeout=self.settings_dict["OPTIONS"].get("timeout", 5)):
            with self.wrap_database_errors:
                raise base.Database.OperationalError("database is locked")
        self._holding = lock

    def release_write_lock(self) -> None:
        if self._holding is not None:
            self._holding, lock = None, self._holding
            lock.release()

    def _start_transaction_under_autocommit(self):
        self.take_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self.release_write_lock()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self.release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self.release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self.release_write_lock()


class Cursor(base.SQLiteCursorWrapper):
    database: DatabaseWrapper

    def execute(self, query, params=None):
        if query.lstrip()[:6].upper() == "SELECT":
            return super().execute(query, params)
        with self._writing():
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self._writing():
            return super().executemany(query, param_list)

    @contextmanager
    def _writing(self):
        """A write outside a transaction holds this process's lock for its statement."""
        if self.database._holding is not None:  # a transaction's, until it ends
            yield
            return
        self.database.take_write_lock()
        try:
            yield
        finally:
            self.database.release_write_lock()
