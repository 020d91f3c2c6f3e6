"""The referral store and its value formats, in process without HTTP."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pcsandbox_helpers import co_sell_body, referral_body

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.partnercenter.events import ReferralEventName
from cosell_sandbox.partnercenter.formats import (
    COUNTRY_CODES,
    CURRENCY_CODES,
    format_timestamp,
    parse_timestamp,
)
from cosell_sandbox.partnercenter.store import (
    MICROSOFT,
    Organization,
    OrganizationId,
    ReferralStore,
    normalize_etag,
)


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[ReferralEventName, str]] = []

    def emit(self, event_name: ReferralEventName, referral_id: str) -> None:
        self.events.append((event_name, referral_id))


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def store(clock: ManualClock, sink: RecordingSink) -> ReferralStore:
    partner = Organization(OrganizationId("partner-org"), "Partner")
    return ReferralStore(
        clock, rng=random.Random(3), partner=partner, sink=sink, base_url="http://pc.test/"
    )


def test_timestamps_have_seven_fractional_digits() -> None:
    moment = datetime(2019, 2, 23, 2, 5, 23, 293181, tzinfo=UTC)
    assert format_timestamp(moment) == "2019-02-23T02:05:23.2931810Z"
    assert format_timestamp(moment.astimezone(timezone(timedelta(hours=2)))).endswith(".2931810Z")
    assert parse_timestamp("2019-02-23T02:05:23.2931817Z") == moment
    assert parse_timestamp("2019-02-23T04:05:23.293181+02:00") == moment
    assert parse_timestamp("2019-02-23") == datetime(2019, 2, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2019, 2, 23))  # noqa: DTZ001 - the naive case under test
    with pytest.raises(ValueError, match="'yesterday' is not an ISO 8601 date-time"):
        parse_timestamp("yesterday")


def test_code_lists_are_the_real_ones() -> None:
    assert len(COUNTRY_CODES) == 249  # ISO 3166-1 alpha-2 assigned codes
    assert {"US", "DE", "GB", "AX", "SS", "XK"} & COUNTRY_CODES == {"US", "DE", "GB", "AX", "SS"}
    assert {"USD", "EUR", "JPY", "CHF", "XOF"} <= CURRENCY_CODES
    assert not {"HRK", "XXX", "XAU", "usd"} & CURRENCY_CODES


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"abc"', "abc"),
        ("abc", "abc"),
        ('W/"abc"', "abc"),
        ('\\"abc\\"', "abc"),
        ('"\\"abc\\""', "abc"),
        ('  "abc" ', "abc"),
    ],
)
def test_normalize_etag(value: str, expected: str) -> None:
    assert normalize_etag(value) == expected


def test_create_then_patch_emits_one_event_each(store: ReferralStore, sink: RecordingSink) -> None:
    created = store.create(referral_body())
    store.patch(created["id"], [{"op": "replace", "path": "/name", "value": "x"}], if_match=None)
    assert sink.events == [("referral-created", created["id"]), ("referral-updated", created["id"])]
    assert created["links"]["self"]["uri"].startswith("http://pc.test/v1.0/")


def test_a_refused_patch_changes_nothing_and_emits_nothing(
    store: ReferralStore, sink: RecordingSink
) -> None:
    created = store.create(referral_body())
    sink.events.clear()
    ops = [
        {"op": "replace", "path": "/details/notes", "value": "changed"},
        {"op": "replace", "path": "/customerProfile/name", "value": "read-only"},
    ]
    with pytest.raises(PartnerCenterSandboxError) as caught:
        store.patch(created["id"], ops, if_match=None)
    assert caught.value.target == "/customerProfile/name"
    assert store.get(created["id"]) == created
    assert sink.events == []


def test_microsoft_helpers(store: ReferralStore, sink: RecordingSink) -> None:
    mine = store.create(co_sell_body())
    microsoft = store.microsoft_referral(mine["id"])
    assert microsoft["organizationId"] == MICROSOFT.id
    with pytest.raises(PartnerCenterSandboxError, match="close as Won or Lost"):
        store.microsoft_close(mine["id"], "Declined")
    assert store.microsoft_accept(mine["id"])["substatus"] == "Accepted"
    assert (
        store.microsoft_set_msx_id(microsoft["id"], "7-X")["trackingInfo"]["microsoftMsxId"]
        == "7-X"
    )
    closed = store.microsoft_close(mine["id"], "Won", "Signed")
    assert (closed["substatus"], closed["statusReason"]) == ("Won", "Signed")
    with pytest.raises(PartnerCenterSandboxError, match="empty"):
        store.microsoft_add_note(mine["id"], "  ")
    assert sink.events[-3:] == [("related-referral-updated", microsoft["id"])] * 3


def test_take_changes_reports_commits_in_order(store: ReferralStore) -> None:
    first = store.create(referral_body(name="first"))
    second = store.create(referral_body(name="second"))
    store.patch(first["id"], [{"op": "replace", "path": "/name", "value": "again"}], if_match=None)
    cleared, changed = store.take_changes()
    assert not cleared
    assert [r["id"] for r in changed] == [first["id"], second["id"]]
    assert changed[0]["name"] == "again"
    assert store.take_changes() == (False, [])
    store.clear()
    assert store.has_changes()
    assert store.take_changes() == (True, [])


def test_restore_rebuilds_engagements_and_expiry(
    store: ReferralStore, clock: ManualClock, sink: RecordingSink
) -> None:
    mine = store.create(co_sell_body())
    lead = store.create_incoming("lead")
    snapshot = store.snapshot()
    store.restore([])
    assert len(store) == 0
    store.restore(snapshot)
    assert [r["id"] for r in store.engagement(mine["engagementId"])] == [
        r["id"] for r in snapshot if r["engagementId"] == mine["engagementId"]
    ]
    sink.events.clear()
    clock.advance(14 * 86400)
    store.expire_due()
    assert ("referral-updated", lead["id"]) in sink.events
    assert store.get(lead["id"])["substatus"] == "Expired"
