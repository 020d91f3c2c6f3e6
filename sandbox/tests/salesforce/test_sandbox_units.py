"""Pure pieces of the Salesforce sandbox: wire formats, ids, the change log, the API counter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cosell_sandbox.salesforce.changelog import ChangeLog, PendingChange, ReplayIdExpiredError
from cosell_sandbox.salesforce.ids import IdFactory, checksum, to_18
from cosell_sandbox.salesforce.limits import ApiUsage
from cosell_sandbox.salesforce.rest import parse_etags, release_label
from cosell_sandbox.salesforce.values import (
    format_datetime,
    format_http_date,
    parse_datetime,
    parse_http_date,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:00:00+00:00",
        "2026-01-05T09:00:00.000+0000",
        "2026-01-05T10:00:00+01:00",
        "2026-01-05T04:00:00.000-0500",
        "2026-01-05T09:00",
    ],
)
def test_datetimes_are_read_in_every_form_and_written_in_one(text: str) -> None:
    assert parse_datetime(text) == T0
    assert format_datetime(parse_datetime(text)) == "2026-01-05T09:00:00.000+0000"


def test_bad_datetimes_and_http_dates() -> None:
    with pytest.raises(ValueError, match="not a datetime"):
        parse_datetime("05/01/2026")
    assert parse_http_date(format_http_date(T0)) == T0
    assert format_http_date(T0) == "Mon, 05 Jan 2026 09:00:00 GMT"
    with pytest.raises(ValueError, match="not an HTTP date"):
        parse_http_date("soon")


def test_id_factory_is_seeded_unique_and_restorable() -> None:
    first = IdFactory(random.Random(1))
    again = IdFactory(random.Random(1))
    ids = [first.new("006") for _ in range(100)]
    assert ids == [again.new("006") for _ in range(100)]
    assert len(set(ids)) == 100
    assert ids == sorted(ids)
    assert all(i[15:] == checksum(i[:15]) for i in ids)
    copy = IdFactory(random.Random(2))
    copy.restore(first.snapshot())
    assert copy.new("006") == first.new("006")
    with pytest.raises(ValueError, match="3 characters"):
        first.new("06")


def test_to_18_round_trips() -> None:
    factory = IdFactory(random.Random(3))
    for _ in range(50):
        full = factory.new("a0X")
        assert to_18(full[:15]) == full
        assert to_18(full.lower()) == full


def change(record_id: str) -> PendingChange:
    return PendingChange("Opportunity", record_id, "UPDATE", ("Amount",), (), {"Amount": 1})


def test_change_log_replay_ids_increase_with_gaps_and_expire() -> None:
    log = ChangeLog()
    first = log.append_commit(
        [change("a"), change("b")],
        committed_at=T0,
        transaction_key="k1",
        commit_user="005",
        change_origin="",
        commit_millis=0,
    )
    second = log.append_commit(
        [change("c")],
        committed_at=T0 + timedelta(hours=1),
        transaction_key="k2",
        commit_user="005",
        change_origin="",
        commit_millis=0,
    )
    ids = [e.replay_id for e in first + second]
    assert ids == sorted(ids)
    assert ids[2] - ids[1] > 1  # gaps between commits: no arithmetic on replay ids
    assert [e.payload["ChangeEventHeader"]["sequenceNumber"] for e in first] == [1, 2]
    assert log.read(after=ids[0], limit=10, now=T0) == first[1:] + second
    assert log.read(after=None, limit=1, now=T0) == first[:1]
    later = T0 + timedelta(hours=72, minutes=30)
    assert log.read(after=None, limit=10, now=later) == second
    with pytest.raises(ReplayIdExpiredError, match="72-hour retention"):
        log.read(after=ids[0], limit=10, now=later)
    assert log.read(after=ids[1], limit=10, now=later) == second
    assert (
        log.append_commit(
            [],
            committed_at=T0,
            transaction_key="k",
            commit_user="",
            change_origin="",
            commit_millis=0,
        )
        == []
    )


def test_api_usage_rolls_over_24_hours() -> None:
    usage = ApiUsage(5)
    for minute in range(5):
        usage.record(T0 + timedelta(minutes=minute))
    now = T0 + timedelta(minutes=5)
    assert usage.exhausted(now)
    assert usage.header(now) == "api-usage=5/5"
    assert usage.used(T0 + timedelta(hours=24, minutes=1, seconds=1)) == 4
    assert usage.remaining(T0 + timedelta(hours=25)) == 5
    with pytest.raises(ValueError, match="positive"):
        ApiUsage(0)


def test_release_labels_and_etags() -> None:
    assert release_label("31.0") == "Summer '14"
    assert release_label("59.0") == "Winter '24"
    assert release_label("66.0") == "Spring '26"
    assert parse_etags('"a", W/"b"') == ['"a"', '"b"']
    assert parse_etags("*") == ["*"]
    assert parse_etags("a") is None
