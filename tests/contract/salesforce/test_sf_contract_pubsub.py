"""Contract of the Pub/Sub API client (change events) against the sandbox's gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sf_harness import control, expire_sessions

from cosell.clock import ManualClock
from cosell.salesforce.client import SalesforceClient
from cosell.salesforce.errors import SessionExpiredError
from cosell.salesforce.pubsub.client import (
    Batch,
    ChangeEventsNotEnabledError,
    ChangeEventsPermissionError,
    PubSubClient,
    Replay,
    ReplayIdInvalidError,
    StreamUnavailableError,
    Subscription,
)

OPPORTUNITIES = "/data/OpportunityChangeEvent"
ALL = "/data/ChangeEvents"
WAIT = 10.0  # seconds a gRPC answer may take on a loaded machine (a guard, not a sleep)


@pytest.fixture
async def pubsub(sandbox: Any, client: SalesforceClient) -> AsyncIterator[PubSubClient]:
    port = await sandbox.pubsub.start(0)
    pubsub = PubSubClient(f"127.0.0.1:{port}", client.session, tls=False)
    yield pubsub
    await pubsub.close()
    await sandbox.pubsub.stop()


async def new_opportunity(http: httpx.AsyncClient, name: str = "Contoso") -> str:
    body = await control(
        http,
        "POST",
        "records/Opportunity",
        {"Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30"},
    )
    return str(body["id"])


async def next_batch(stream: AsyncIterator[Batch]) -> Batch:
    return await asyncio.wait_for(anext(stream), WAIT)


async def events_of(subscription: Subscription, count: int) -> list[Any]:
    stream = aiter(subscription)
    found: list[Any] = []
    while len(found) < count:
        batch = await next_batch(stream)
        found.extend(batch.events)
        subscription.processed(len(batch.events))
    return found


async def test_an_edit_arrives_with_its_header_decoded(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    opportunity_id = await new_opportunity(http)
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.latest())
    stream = aiter(subscription)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # let the stream open before the edit (LATEST starts at the tip)
    await control(
        http, "PATCH", f"records/Opportunity/{opportunity_id}?client=cosell", {"Amount": 5}
    )
    batch = await asyncio.wait_for(first, WAIT)
    (event,) = batch.events
    assert event.header.entity_name == "Opportunity"
    assert event.header.record_ids == (opportunity_id,)
    assert event.header.change_type == "UPDATE"
    assert "Amount" in event.header.changed_fields
    assert event.header.made_by("cosell")
    assert event.fields["Amount"] == 5.0
    assert batch.latest_replay_id == event.replay_id
    await subscription.close()


async def test_flow_control_sends_no_more_than_requested(
    pubsub: PubSubClient, http: httpx.AsyncClient, sandbox: Any
) -> None:
    for n in range(5):
        await new_opportunity(http, f"Deal {n}")
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest(), batch=2)
    stream = aiter(subscription)
    first = await next_batch(stream)
    assert len(first.events) == 2
    assert sandbox.pubsub.sent == 2  # nothing more until the client asks
    subscription.processed(2)
    seen = list(first.events)
    while len(seen) < 5:
        batch = await next_batch(stream)
        seen.extend(batch.events)
        subscription.processed(len(batch.events))
    assert [e.header.change_type for e in seen] == ["CREATE"] * 5
    assert subscription.requested >= 6
    await subscription.close()


async def test_replay_after_a_restart_resumes_after_the_stored_id(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await new_opportunity(http, "Before")
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())
    (before,) = await events_of(subscription, 1)
    await subscription.close()
    stored = before.replay_id
    after_id = await new_opportunity(http, "After")
    resumed = await pubsub.subscribe(OPPORTUNITIES, Replay.after(stored))
    (after,) = await events_of(resumed, 1)
    assert after.header.record_ids == (after_id,)
    await resumed.close()


async def test_a_schema_change_fetches_the_new_schema_once(
    pubsub: PubSubClient, http: httpx.AsyncClient, sandbox: Any
) -> None:
    from cosell_sandbox.salesforce.schema import FieldSchema

    await new_opportunity(http, "One")
    await new_opportunity(http, "Two")
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())
    await events_of(subscription, 2)
    assert pubsub.schema_calls == 1  # one schema, cached
    opportunity = sandbox.schema.sobject("Opportunity")
    opportunity.add_field(FieldSchema(name="Region__c", label="Region", type="string", length=20))
    await new_opportunity(http, "Three")
    (third,) = await events_of(subscription, 1)
    assert pubsub.schema_calls == 2
    assert "Region__c" in third.fields or third.header.change_type == "CREATE"
    await subscription.close()


async def test_gap_and_overflow_events(pubsub: PubSubClient, http: httpx.AsyncClient) -> None:
    opportunity_id = await new_opportunity(http)
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.latest())
    stream = aiter(subscription)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    await control(
        http,
        "POST",
        "cdc/gap",
        {"entity": "Opportunity", "changeType": "GAP_UPDATE", "recordIds": [opportunity_id]},
    )
    await control(http, "POST", "cdc/gap", {"entity": "Opportunity", "changeType": "GAP_OVERFLOW"})
    seen = list((await asyncio.wait_for(first, WAIT)).events)
    subscription.processed(len(seen))
    while len(seen) < 2:
        batch = await next_batch(stream)
        seen.extend(batch.events)
    gap, overflow = seen
    assert (gap.header.change_type, gap.header.record_ids) == ("GAP_UPDATE", (opportunity_id,))
    assert gap.header.is_gap
    assert gap.fields == {}
    assert (overflow.header.change_type, overflow.header.record_ids) == ("GAP_OVERFLOW", ())
    await subscription.close()


async def test_a_dropped_stream_is_a_retriable_error(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await new_opportunity(http)
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())
    stream = aiter(subscription)
    await next_batch(stream)
    assert (await control(http, "POST", "cdc/drop"))["dropped"] == 1
    with pytest.raises(StreamUnavailableError):
        await next_batch(stream)


async def test_a_replay_id_past_retention_is_refused(
    pubsub: PubSubClient, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await new_opportunity(http, "Old")
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())
    (old,) = await events_of(subscription, 1)
    await subscription.close()
    clock.advance(73 * 3600)
    await new_opportunity(http, "New")  # the log moves on; the old event is dropped
    await pubsub.get_topic(OPPORTUNITIES)  # three days on, the session is renewed first
    stale = await pubsub.subscribe(OPPORTUNITIES, Replay.after(old.replay_id))
    with pytest.raises(ReplayIdInvalidError, match="Replay ID"):
        await next_batch(aiter(stale))


async def test_an_object_not_selected_for_cdc_is_named(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await control(http, "PUT", "cdc", {"entities": ["Lead"]})
    with pytest.raises(ChangeEventsNotEnabledError, match="select Opportunity"):
        await pubsub.get_topic(OPPORTUNITIES)
    lead = await pubsub.get_topic("/data/LeadChangeEvent")
    assert lead.can_subscribe
    assert lead.schema_id
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.latest())
    with pytest.raises(ChangeEventsNotEnabledError):
        await next_batch(aiter(subscription))


async def test_a_user_without_view_all_is_refused_a_single_object_channel(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await control(http, "PUT", "cdc", {"permission": False})
    with pytest.raises(ChangeEventsPermissionError, match="Cosell_Change_Events"):
        await pubsub.get_topic(OPPORTUNITIES)
    with pytest.raises(
        ChangeEventsPermissionError, match="View All Records permission on Opportunity"
    ):
        await next_batch(aiter(await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())))
    # /data/ChangeEvents takes anyone's subscription (permissions are enforced on delivery).
    assert (await pubsub.get_topic(ALL)).can_subscribe


async def test_events_of_an_object_without_view_all_are_not_delivered_on_the_channel(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    settings = await control(http, "PUT", "cdc", {"view_all_records": {"Opportunity": False}})
    assert settings["view_all_records"]["Opportunity"] is False
    assert settings["view_all_records"]["Lead"] is True
    await new_opportunity(http, "Hidden")
    lead = await control(http, "POST", "records/Lead", {"LastName": "Doe", "Company": "Fabrikam"})
    await new_opportunity(http, "Hidden too")
    subscription = await pubsub.subscribe(ALL, Replay.earliest())
    (event,) = await events_of(subscription, 1)
    assert event.header.entity_name == "Lead"
    assert event.header.record_ids == (lead["id"],)
    # Granted again: the next Opportunity change is delivered on the open stream.
    await control(http, "PUT", "cdc", {"view_all_records": {"Opportunity": True}})
    shown = await new_opportunity(http, "Shown")
    (after,) = await events_of(subscription, 1)
    assert after.header.record_ids == (shown,)
    await subscription.close()


async def test_view_all_records_names_objects_that_exist(http: httpx.AsyncClient) -> None:
    answer = await http.put("/control/cdc", json={"view_all_records": {"Nope__c": False}})
    assert answer.status_code == 400
    assert "no such object: Nope__c" in answer.text
    answer = await http.put("/control/cdc", json={"view_all_records": {"Lead": "no"}})
    assert answer.status_code == 400


async def test_an_expired_session_is_refreshed_once(
    pubsub: PubSubClient, http: httpx.AsyncClient, client: SalesforceClient
) -> None:
    await pubsub.get_topic(ALL)
    before = client.session.authentications
    await expire_sessions(http)
    assert (await pubsub.get_topic(ALL)).topic_name == ALL
    assert client.session.authentications == before + 1


async def test_a_stranger_token_is_refused(sandbox: Any, client: SalesforceClient) -> None:
    import grpc

    port = await sandbox.pubsub.start(0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            from cosell.salesforce.pubsub import pubsub_api_pb2 as pb

            method = channel.unary_unary(
                "/eventbus.v1.PubSub/GetTopic",
                request_serializer=pb.TopicRequest.SerializeToString,
                response_deserializer=pb.TopicInfo.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await method(
                    pb.TopicRequest(topic_name=ALL),
                    metadata=(("accesstoken", "nope"), ("instanceurl", "x"), ("tenantid", "y")),
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await sandbox.pubsub.stop()
    assert SessionExpiredError  # the client's name for this refusal (see error_from_rpc)


async def test_duplicated_events_carry_the_same_replay_id(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await control(http, "PUT", "cdc", {"duplicate": True})
    await new_opportunity(http)
    subscription = await pubsub.subscribe(OPPORTUNITIES, Replay.earliest())
    first, second = await events_of(subscription, 2)
    assert first.replay_id == second.replay_id
    assert first.header == second.header
    await subscription.close()


async def test_the_all_changes_channel_carries_only_selected_objects(
    pubsub: PubSubClient, http: httpx.AsyncClient
) -> None:
    await control(http, "POST", "records/Account", {"Name": "Not selected"})
    await new_opportunity(http)
    subscription = await pubsub.subscribe(ALL, Replay.earliest())
    (event,) = await events_of(subscription, 1)
    assert event.header.entity_name == "Opportunity"
    await subscription.close()
