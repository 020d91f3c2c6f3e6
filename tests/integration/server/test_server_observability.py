"""Logs with secrets masked, metrics per app, the reconciler that counts outcomes and lag."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from pydantic import SecretStr

from cosell.clock import ManualClock
from cosell.server.logs import MASK, configure_logging, redact_secrets
from cosell.server.metrics import Metrics, ObservedReconciler
from cosell.server.readiness import Check, Readiness
from cosell.store.types import Key
from cosell.sync.plan.outcome import Outcome


def test_redact_masks_secret_named_fields_at_any_depth_and_every_secret_str() -> None:
    event = {
        "event": "token refreshed",
        "client_secret": "s3cr3t",
        "Authorization": "Bearer abc",
        "access_token": "tok",
        "refresh_token": "rt",
        "password": "pw",
        "jwt_assertion": "eyJ...",
        "key": "referral:1",
        "nested": {"headers": {"authorization": "Bearer x", "accept": "json"}, "n": 3},
        "items": [{"api_key": "k"}, SecretStr("hidden"), "plain"],
        "wrapped": SecretStr("also hidden"),
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["event"] == "token refreshed"
    for name in ("client_secret", "Authorization", "access_token", "refresh_token", "password"):
        assert out[name] == MASK
    assert out["jwt_assertion"] == MASK
    assert out["key"] == "referral:1"
    assert out["nested"] == {"headers": {"authorization": MASK, "accept": "json"}, "n": 3}
    assert out["items"] == [{"api_key": MASK}, MASK, "plain"]
    assert out["wrapped"] == MASK


def test_redact_masks_credentials_inside_text_the_message_included() -> None:
    out = redact_secrets(
        None,
        "warning",
        {
            "event": "refused Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig",
            "url": "postgresql://cosell:hunter2@db.example/cosell",
            "header": "Signature c2lnbmF0dXJlLWJ5dGVz==",
            "note": "signature checked",
        },
    )
    assert out["event"] == f"refused Authorization: Bearer {MASK}"
    assert out["url"] == f"postgresql://cosell:{MASK}@db.example/cosell"
    assert out["header"] == f"Signature {MASK}"
    assert out["note"] == "signature checked"  # words stay; only a credential-like run goes


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("BEARER abcdefgh123", f"BEARER {MASK}"),
        ("\u017fignature abcdefgh123", f"\u017fignature {MASK}"),  # long s: `s` to the pattern
        ("s\u0130gnature abcdefgh123", f"s\u0130gnature {MASK}"),  # dotted capital I
        ("token s\u0131gnature abcdefgh123", f"token s\u0131gnature {MASK}"),  # dotless i
        ("redis://:pw@cache:6379", f"redis://:{MASK}@cache:6379"),
        ("a@b but no scheme", "a@b but no scheme"),
        ("plain text", "plain text"),
    ],
)
def test_redact_masks_every_spelling_the_patterns_match(text: str, masked: str) -> None:
    """The quick pre-checks before the patterns miss nothing the patterns themselves match."""
    out = redact_secrets(None, "info", {"event": text, "detail": text, "n": 3, "none": None})
    assert (out["event"], out["detail"], out["n"], out["none"]) == (masked, masked, 3, None)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("json")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").disabled = False


def test_structlog_and_stdlib_records_come_out_as_json_lines_with_secrets_masked(
    captured: io.StringIO,
) -> None:
    structlog.get_logger("cosell.test").info("signed in", client_secret="s3cr3t", user="alice")
    logging.getLogger("cosell.test.stdlib").warning("plain %s", "record", extra={"token": "t0k"})
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert lines[0]["event"] == "signed in"
    assert lines[0]["client_secret"] == MASK
    assert lines[0]["user"] == "alice"
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "cosell.test"
    assert lines[0]["timestamp"].endswith("Z")
    assert lines[1]["event"] == "plain record"
    assert lines[1]["token"] == MASK
    assert "s3cr3t" not in captured.getvalue()
    assert "t0k" not in captured.getvalue()


class _Fixed:
    def __init__(self, results: Sequence[str]) -> None:
        self.results = list(results)

    async def reconcile_key(self, ctx: object, key: Key, /) -> Outcome:
        return Outcome(key=key, link_id="L1", result=self.results.pop(0))

    async def reconcile_batch(self, ctx: object, keys: Sequence[Key], /) -> list[Outcome]:
        return [Outcome(key=k, link_id=None, result=self.results.pop(0)) for k in keys]


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_outcomes_are_counted_by_result_and_lag_measured_from_the_webhooks_timestamp() -> (
    None
):
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    metrics = Metrics()
    observed = ObservedReconciler(
        _Fixed(["synced", "error", "created", "unchanged"]), metrics, clock
    )  # type: ignore[arg-type]
    observed.change_seen("referral:a", clock.now() - timedelta(seconds=1.5))
    observed.change_seen("referral:a", clock.now())  # a later change of the same key: earliest kept
    observed.change_seen("referral:b", clock.now() - timedelta(seconds=9))
    await observed.reconcile_key(None, Key("referral:a"))  # type: ignore[arg-type]
    await observed.reconcile_batch(None, [Key("referral:b"), Key("referral:c"), Key("referral:d")])  # type: ignore[arg-type]
    assert _value(metrics, "cosell_reconciles_total", result="synced") == 1
    assert _value(metrics, "cosell_reconciles_total", result="error") == 1
    assert _value(metrics, "cosell_reconciles_total", result="created") == 1
    assert _value(metrics, "cosell_reconciles_total", result="unchanged") == 1
    # Only referral:a was carried with a known change time; referral:b ended in error.
    assert _value(metrics, "cosell_sync_lag_seconds_count") == 1
    assert _value(metrics, "cosell_sync_lag_seconds_sum") == pytest.approx(1.5)
    assert _value(metrics, "cosell_sync_lag_seconds_bucket", le="2.0") == 1
    assert _value(metrics, "cosell_sync_lag_seconds_bucket", le="1.0") == 0


def test_api_calls_and_errors_are_counted_per_api_and_kind() -> None:
    metrics = Metrics()
    for status in (200, 201, 429, 503, 404, None):
        metrics.api_call("salesforce", status=status)
    metrics.api_call("partner_center", status=200)
    assert _value(metrics, "cosell_api_calls_total", api="salesforce") == 6
    assert _value(metrics, "cosell_api_calls_total", api="partner_center") == 1
    for kind in ("throttled", "server", "client", "transport"):
        assert _value(metrics, "cosell_api_errors_total", api="salesforce", kind=kind) == 1
    assert _value(metrics, "cosell_api_errors_total", api="partner_center", kind="server") == 0


def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.notifications_rejected.labels(reason="invalid_signature").inc()
    assert _value(two, "cosell_notifications_rejected_total", reason="invalid_signature") == 0
    assert b"cosell_notifications_rejected_total" in one.render()


async def test_a_check_that_hangs_fails_with_its_timeout_and_names_must_be_unique() -> None:
    import asyncio

    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    readiness = Readiness([Check("slow", hangs)], clock=ManualClock(), timeout_seconds=0.01)
    ready, body = await readiness.run()
    assert not ready
    assert body["checks"]["slow"] == {"ok": False, "detail": "no answer within 0.01 s"}
    with pytest.raises(ValueError, match="unique"):
        Readiness([Check("a", hangs), Check("a", hangs)], clock=ManualClock())


async def test_fields_adopted_from_the_orgs_automation_are_counted() -> None:
    class _Adopting:
        async def reconcile_key(self, ctx: object, key: Key, /) -> Outcome:
            return Outcome(key=key, link_id="L1", result="synced", adopted=2)

        async def reconcile_batch(self, ctx: object, keys: Sequence[Key], /) -> list[Outcome]:
            return [Outcome(key=k, link_id=None, result="unchanged", adopted=1) for k in keys]

    metrics = Metrics()
    observed = ObservedReconciler(_Adopting(), metrics, ManualClock())  # type: ignore[arg-type]
    assert _value(metrics, "cosell_automation_adopted_total") == 0
    await observed.reconcile_key(None, Key("referral:a"))  # type: ignore[arg-type]
    await observed.reconcile_batch(None, [Key("referral:b")])  # type: ignore[arg-type]
    assert _value(metrics, "cosell_automation_adopted_total") == 3
