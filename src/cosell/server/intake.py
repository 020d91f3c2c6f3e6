"""`InboxWriter`: the webhook endpoint's group commit into the store's inbox, off the event loop.

Each accepted callback must be durably in the inbox before it is answered 200, and a store
write is a synchronous database transaction. Written one by one on the event loop, every
callback would wait for the commit of each one before it; in a thread each, they would queue
on SQLite's single writer lock anyway. So the requests hand their event to the writer and
await it; the writer takes everything handed in so far (up to `max_batch`), writes it in *one*
transaction (`Store.record_events`) in a worker thread, and resolves each request with whether
its event was new. Callbacks that arrive meanwhile gather for the next transaction: under load
a commit serves many callbacks, and when idle a lone callback is written at once (no timer).

The transactions run on the writer's own thread, not on the event loop's default executor:
DBOS makes that executor its own pool, where the workflows' system-database commits would
queue ahead of a callback's write (measured: a median answer of ~50 ms under load, most of it
waiting for a pool thread). At most one transaction is in flight per writer.

**Bad input costs only itself.** An event is checked before it joins a batch (its key is a
cosell key, its id plain text), so one that cannot be stored is refused alone
(`KeyFormatError`, a `ValueError`) and never fails its neighbours' transaction. Should a batch
still fail with anything but a `StoreError` (a driver refusing one row's text raises a bare
`UnicodeEncodeError`), each of its events is written again in a transaction of its own: the
good ones are recorded, and only the one the store refuses for its content (a `ValueError`)
gets `UnrecordableEventError` (the endpoint answers 400). When the store itself fails
(`StoreError`), every request of the batch gets that error (the endpoint answers 503, Partner
Center retries) and nothing of the batch is recorded (one transaction). A request cancelled
while waiting (client gone) may still have its event recorded, which is harmless: the
reconcile it leads to is level-triggered.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from cosell.store import KeyFormatError, Store, StoreError, parse_key

DEFAULT_MAX_BATCH: Final = 500  # events per transaction: a few ms of SQLite work
MAX_EVENT_ID_LENGTH: Final = 255  # the inbox's event_id column


class UnrecordableEventError(ValueError):
    """The store refused this one event for what it holds (its neighbours were recorded)."""


@dataclass(frozen=True)
class _Pending:
    event_id: str
    key: str
    payload: bytes
    answer: asyncio.Future[bool]


class InboxWriter:
    """Records webhook events in the store's inbox, batching concurrent callers.

    Args:
        store: the store whose inbox receives the events.
        source: the `source` of every event recorded (e.g. `partner-center`).
        max_batch: most events written in one transaction.
    """

    def __init__(self, store: Store, *, source: str, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._store = store
        self._source = source
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writing: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cosell-inbox")
        self.transactions = 0  # committed or failed; the batching shows as events / transactions

    async def record(self, *, event_id: str, key: str, payload: bytes) -> bool:
        """Record one event durably; return once it is committed.

        Args:
            event_id: the event's id (unique per source).
            key: the key it says may be out of date.
            payload: the body as received.

        Returns:
            True when the event is new, False when it had been recorded before.

        Raises:
            KeyFormatError: `key` is not a cosell key, or `event_id` not a short plain text.
            UnrecordableEventError: the store refused this event alone; nothing else failed.
            StoreError: the store could not record it (nothing of its batch was recorded).
        """
        _check_event(event_id, key)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(event_id, key, payload, answer))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_all())
        return await answer

    def close(self) -> None:
        """Stop the writer's thread once its last transaction is done (at the app's shutdown)."""
        self._thread.shutdown(wait=False)

    async def _write_all(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                new = await self._transaction(batch)
            except StoreError as exc:
                _answer_all(batch, exc)
            except Exception as exc:  # noqa: BLE001 - maybe one row's fault: find it
                if len(batch) == 1:
                    _answer_all(batch, _refused(exc))
                else:
                    await self._one_by_one(batch)
            else:
                for pending, fresh in zip(batch, new, strict=True):
                    if not pending.answer.done():
                        pending.answer.set_result(fresh)

    async def _transaction(self, batch: list[_Pending]) -> list[bool]:
        rows = [(p.event_id, p.key, p.payload) for p in batch]
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread,
                functools.partial(self._store.record_events, source=self._source, events=rows),
            )
        finally:
            self.transactions += 1

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                (fresh,) = await self._transaction([pending])
            except Exception as exc:  # noqa: BLE001 - this event alone fails
                _answer_all([pending], _refused(exc))
            else:
                if not pending.answer.done():
                    pending.answer.set_result(fresh)


def _check_event(event_id: str, key: str) -> None:
    parse_key(key)  # KeyFormatError names what a key looks like
    if not event_id or len(event_id) > MAX_EVENT_ID_LENGTH or not event_id.isprintable():
        raise KeyFormatError(f"event id {event_id[:80]!r} is not a short printable text")
    try:
        event_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise KeyFormatError("the event id holds an unpaired surrogate") from exc


def _refused(exc: Exception) -> Exception:
    """What one event's request gets: its content refused (a ValueError), else the failure."""
    if isinstance(exc, StoreError) or not isinstance(exc, ValueError):
        return exc  # the store's or cosell's problem, not the event's: the endpoint says 503
    error = UnrecordableEventError(
        f"the store refused this event ({type(exc).__name__}); the other events were recorded"
    )
    error.__cause__ = exc
    return error


def _answer_all(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.answer.done():
            pending.answer.set_exception(exc)
