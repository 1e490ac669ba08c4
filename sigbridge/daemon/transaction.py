"""A group of bar database writes committed once; `BarStore.transaction()` creates it."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigbridge.daemon.sessions import StreamKey
    from sigbridge.daemon.storage import BarStore


class Transaction:
    """The writes of one `BarStore.transaction()` block; see there.

    Attributes:
        written: the stream key of each write that succeeded inside, in order.
    """

    def __init__(self, store: BarStore, *, background: bool = False) -> None:
        self.store = store
        self.background = background
        self.written: list[StreamKey] = []
        self.begun = False
        self.broken = False
        # Why BEGIN failed, e.g. another connection held the write lock past busy_timeout.
        self.begin_error: str | None = None
        self.owner: int | None = None
        self._commit: concurrent.futures.Future | None = None

    def __enter__(self) -> Transaction:
        current = self.store._transaction
        if current is not None and current.owner == threading.get_ident():
            raise RuntimeError("bar database transactions do not nest")
        self.store._lock.acquire()
        self.owner = threading.get_ident()
        self.store._transaction = self
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        self.store._transaction = None
        if not self.begun:
            self.store._lock.release()
            return
        if error_type is None and self.background:
            # The commit thread releases the lock when the commit has ended.
            try:
                self._commit = self.store._commit_thread().submit(self._end_and_release, True)
            except BaseException:  # e.g. no thread can be started: undo here and release the lock
                self._end_and_release(False)
                raise
            return
        self._end_and_release(error_type is None)

    def _end_and_release(self, commit: bool) -> None:
        try:
            self.store._end_transaction(self, commit)
        finally:
            self.store._lock.release()

    def wait(self) -> None:
        """Wait for a background commit to end.

        Raises:
            StorageError: the commit failed and every write of the transaction was undone.
        """
        if self._commit is not None:
            self._commit.result()
