"""When and where reconciles run: DBOS workflows over one explicit engine object.

```
core.py             Engine: lifecycle, notify/coalescing, the inbox drainer, leases, passes
workflows.py        the DBOS steps and workflows, bound to the started Engine (`Runtime`)
breaker.py          a circuit breaker per side: a side's failure pauses it, a probe resumes it
backoff.py          the one retry policy (capped exponential backoff, full jitter, Retry-After)
config.py           queue names, batch size, EngineOptions, the system database URL, logging
system_database.py  DBOS's system database engine
```
"""

from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.breaker import Breaker
from cosell.sync.engine.config import (
    BATCH_QUEUE,
    LAST_SWEEP_CURSOR,
    RECONCILE_QUEUE,
    SCHEDULE_QUEUE,
    EngineError,
    EngineOptions,
    configure_dbos_logging,
    cron_for,
    system_database_url,
)
from cosell.sync.engine.core import (
    Engine,
    PreflightError,
    Reconciler,
    Summary,
    SyncPausedError,
    settings_context_factory,
)
from cosell.sync.engine.workflows import sweep_workflow
from cosell.sync.plan.limits import BATCH_SIZE

__all__ = [
    "BATCH_QUEUE",
    "BATCH_SIZE",
    "LAST_SWEEP_CURSOR",
    "RECONCILE_QUEUE",
    "SCHEDULE_QUEUE",
    "BackoffPolicy",
    "Breaker",
    "Engine",
    "EngineError",
    "EngineOptions",
    "PreflightError",
    "Reconciler",
    "Summary",
    "SyncPausedError",
    "configure_dbos_logging",
    "cron_for",
    "settings_context_factory",
    "sweep_workflow",
    "system_database_url",
]
