"""The engine's configuration: queue names, the batch size, `EngineOptions`, the system database URL, DBOS logging."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url

from cosell.config import Settings
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.io import pollers

RECONCILE_QUEUE: Final = "cosell-reconcile"


BATCH_QUEUE: Final = "cosell-batch"


SCHEDULE_QUEUE: Final = "cosell-schedules"


KEY_WORKFLOW_PREFIX: Final = "cosell-reconcile:"


LAST_SWEEP_CURSOR: Final = pollers.LAST_SWEEP_CURSOR  # named with the pollers' cursors


INBOX_PAGE: Final = 500  # inbox events drained per store read


INBOX_RETRY_SECONDS: Final = 1.0  # the drainer's pause after a failed drain (system DB down)


class EngineError(Exception):
    """The engine cannot run as configured; the message says what to change."""


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs (from `Settings` by `EngineOptions.from_settings`, or by hand).

    Attributes:
        system_database_url: DBOS's system database. None: derived from the store's URL.
        poll_interval_seconds: period of both pollers (a divisor of 60 below a minute, else a
            whole number of minutes dividing an hour, or of hours dividing a day).
        sweep_interval_seconds: period of the full reconciliation (same rule).
        executor_id: this worker's name in the system database; a restarted worker with the
            same name recovers the workflows it was running. Two live workers need two names.
        queue_polling_seconds: how often a worker looks for queued workflows.
        lease_seconds: a single key's lease (longer than one reconcile with its 412 retries).
        batch_lease_seconds: a batch's leases (200 keys: a few calls, then collection writes).
        worker_reconciles: single-key reconciles one worker runs at once (a burst of many keys
            must not open as many API calls at once).
        worker_batches: batch workflows one worker runs at once.
        overlap_seconds: the pollers' overlap (see `pollers`).
        backoff: the retry policy.
        probe_seconds: the least time between two probes of a side whose circuit is open
            (None: the poll interval).
        preflight: a worker (`start(background=True)`) checks both connections and the
            mapping before it syncs anything; a failure opens the side's circuit.
    """

    system_database_url: str | None = None
    poll_interval_seconds: int = 30
    sweep_interval_seconds: int = 3600
    executor_id: str = "local"
    queue_polling_seconds: float = (
        0.25  # a webhook's reconcile starts within 1/4 s (target: p95 < 2 s)
    )
    lease_seconds: float = 60.0
    batch_lease_seconds: float = 120.0
    worker_reconciles: int = 16  # enough to hide API latency; well under both APIs' limits
    worker_batches: int = 2  # two batches overlap one's reads with the other's writes
    overlap_seconds: float = pollers.DEFAULT_OVERLAP_SECONDS
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    probe_seconds: float | None = None  # None: one probe per poll interval (see `breaker`)
    preflight: bool = False  # `start(background=True)` checks both sides first (serve)

    @property
    def probe_interval(self) -> float:
        """The least time between two probes of a side whose circuit is open, in seconds.

        At most the poll interval, so that a side back up is synced within two poll intervals.
        """
        return float(self.probe_seconds or self.poll_interval_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        """The options `cosell.toml`'s `[sync]` section asks for.

        The executor id comes from `COSELL_WORKER_ID` (default `local`): give each worker that
        shares a PostgreSQL store its own, and keep it across restarts.
        """
        sync = settings.sync
        return cls(
            poll_interval_seconds=int(sync.poll_interval_seconds),
            sweep_interval_seconds=int(sync.sweep_interval_seconds),
            executor_id=os.environ.get("COSELL_WORKER_ID", "local"),
            preflight=True,
        )


def system_database_url(store_url: str | URL) -> str:
    """DBOS's system database for a store: a SQLite file beside it, or the same PostgreSQL.

    Args:
        store_url: the store's SQLAlchemy URL.

    Returns:
        `sqlite:///<dir>/<store stem>-dbos.sqlite`, or the store's PostgreSQL URL (DBOS keeps
        its tables in the schema `dbos`).

    Raises:
        EngineError: an in-memory SQLite store, or a database DBOS cannot use.
    """
    url = make_url(store_url) if isinstance(store_url, str) else store_url
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            raise EngineError(
                "the store is an in-memory SQLite database, which has no place for the engine's "
                "system database; use a file (store url sqlite:///cosell.db)"
            )
        path = Path(database)
        return f"sqlite:///{path.with_name(path.stem + '-dbos.sqlite')}"
    if backend == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    raise EngineError(
        f"the engine runs on SQLite or PostgreSQL, not {backend}; set [store] url accordingly"
    )


def cron_for(seconds: int, what: str) -> str:
    """A six-field cron (seconds first) that fires every `seconds`, aligned on the clock.

    Raises:
        EngineError: a period cron cannot express evenly; the message lists good ones.
    """
    if seconds <= 0:
        raise EngineError(f"{what} must be a positive number of seconds")
    if seconds < 60 and 60 % seconds == 0:
        return f"*/{seconds} * * * * *"
    if seconds % 60 == 0 and seconds < 3600 and 60 % (seconds // 60) == 0:
        return f"0 */{seconds // 60} * * * *"
    if seconds % 3600 == 0 and 24 % (seconds // 3600) == 0:
        return f"0 0 */{seconds // 3600} * * *"
    raise EngineError(
        f"{what} = {seconds} cannot be scheduled evenly; use a divisor of 60 seconds "
        "(e.g. 15, 30), whole minutes dividing an hour (e.g. 300, 900) or hours dividing a day "
        "(e.g. 3600, 21600)"
    )


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class _MaskPasswords(logging.Filter):
    """Masks `user:password@` in DBOS's log messages (its errors may quote the database URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _PASSWORD_IN_URL.sub(r"\1***@", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_dbos_logging(level: int = logging.WARNING) -> None:
    """Send DBOS's records through the standard logging tree at `level`, passwords masked.

    DBOS adds a console handler of its own unless its logger already has one; a NullHandler
    keeps it from doing so, and propagation hands every record to the application's handlers.
    """
    logger = logging.getLogger("dbos")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    if not any(isinstance(f, _MaskPasswords) for f in logger.filters):
        logger.addFilter(_MaskPasswords())
    logger.propagate = True
    logger.setLevel(level)
