"""The service: the webhook endpoint, health, readiness and metrics, around the sync engine.

```
app.py        create_app: POST <webhook_path>, /healthz, /readyz, /metrics; the engine in the lifespan
intake.py     InboxWriter: callbacks recorded in the inbox by group commit, off the event loop
metrics.py    Metrics (a registry per app), StoreCollector (gauges at scrape), ObservedReconciler
readiness.py  Readiness: named checks, each cached for its TTL
logs.py       configure_logging: structlog and stdlib as JSON lines, secrets masked
```

`cosell.commands.serve` wires it: it builds the HTTP clients, the verifier, the engine and the
readiness checks from the settings and runs the app under uvicorn. Nothing here opens a socket
or builds an HTTP client of its own.
"""

from typing import Final

DEFAULT_GRACE_SECONDS: Final = 10.0  # running reconciles finish within this on shutdown
