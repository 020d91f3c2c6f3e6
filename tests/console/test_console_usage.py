"""`cosell serve`'s API usage for the console: the transports' counts and Salesforce's report."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cosell.clock import ManualClock
from cosell.commands.serve import api_usage
from cosell.salesforce.client import ApiUsage as ReportedUsage
from cosell.server.metrics import Metrics


def test_usage_reads_the_counted_calls_and_the_orgs_last_report() -> None:
    clock = ManualClock()
    metrics = Metrics()
    for status in (200, 200, 429):
        metrics.api_call("partner_center", status=status)
    metrics.api_call("salesforce", status=200)
    reported = ReportedUsage(used=900, limit=15000, budget=1000, observed_at=clock.now())
    ctx: Any = SimpleNamespace(salesforce=SimpleNamespace(usage=reported))
    partner_center, salesforce = api_usage(metrics, ctx)
    assert (partner_center.calls, partner_center.throttled, partner_center.used) == (3, 1, None)
    assert (salesforce.calls, salesforce.used, salesforce.limit) == (1, 900, 15000)
    assert salesforce.cap == 1000  # cosell's budget before the org's limit
    assert salesforce.observed_at == clock.now()


def test_before_salesforce_reports_its_usage_there_is_none() -> None:
    ctx: Any = SimpleNamespace(salesforce=SimpleNamespace(usage=None))
    _, salesforce = api_usage(Metrics(), ctx)
    assert (salesforce.calls, salesforce.used, salesforce.cap) == (0, None, None)
