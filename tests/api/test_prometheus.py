"""`GET /metrics` (PROMETHEUS_ENABLED) on the API port: the admin key's, in the text format the
standard parser reads; off by default."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ._support import ADMIN, Api, assert_error

pytestmark = pytest.mark.anyio
URL = "http://testserver/metrics"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(response: httpx.Response) -> tuple[Samples, dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return samples, {f.name: f for f in families}


async def test_off_by_default(api: Api) -> None:
    assert_error(await api.client.get(URL, headers={"Authorization": ADMIN}), 404)


async def test_only_the_admin_key_may_scrape(make_api: Any) -> None:
    api = await make_api(PROMETHEUS_ENABLED="true")
    assert_error(await api.client.get(URL), 401)
    tenant = await api.tenant()
    assert_error(await api.client.get(URL, headers={"Authorization": await api.jwt(tenant)}), 403)
    assert (await api.client.get(URL, headers={"Authorization": ADMIN})).status_code == 200


async def test_publishes_and_the_backlog_of_due_tasks(make_api: Any) -> None:
    api = await make_api(PROMETHEUS_ENABLED="true")
    tenant = await api.tenant()
    await api.destination(tenant)
    await api.destination(tenant)
    before, families = parsed(await api.client.get(URL, headers={"Authorization": ADMIN}))
    assert before[("outpost_due_tasks", ())] == 0
    assert before[("outpost_oldest_due_task_age_seconds", ())] == 0
    assert before[("outpost_dependency_up", (("dependency", "database"),))] == 1
    assert ("process_resident_memory_bytes", ()) in before  # the process's own health
    assert families["outpost_publish_duration_seconds"].type == "histogram"
    for family in families.values():  # no tenant, destination or event ids as labels
        for sample in family.samples:
            assert not {"tenant_id", "destination_id", "event_id"} & set(sample.labels)

    await api.publish(tenant, id="once")
    await api.publish(tenant, id="once")  # a duplicate: no more tasks
    await api.publish(tenant)
    after, _ = parsed(await api.client.get(URL, headers={"Authorization": ADMIN}))
    accepted = ("outpost_published_events_total", (("result", "accepted"),))
    duplicate = ("outpost_published_events_total", (("result", "duplicate"),))
    assert after[accepted] == before.get(accepted, 0) + 2
    assert after[duplicate] == before.get(duplicate, 0) + 1
    assert after[("outpost_queued_deliveries_total", ())] == 4  # two events, two destinations
    assert after[("outpost_publish_duration_seconds_count", ())] == 3
    assert after[("outpost_due_tasks", ())] == 4  # nothing delivers here
    assert after[("outpost_oldest_due_task_age_seconds", ())] >= 0

    await api.deliver_queued()
    done, _ = parsed(await api.client.get(URL, headers={"Authorization": ADMIN}))
    assert done[("outpost_due_tasks", ())] == 0


async def test_on_its_own_port_it_is_not_on_the_api_port(make_api: Any) -> None:
    api = await make_api(PROMETHEUS_ENABLED="true", PROMETHEUS_PORT="9464")
    assert_error(await api.client.get(URL, headers={"Authorization": ADMIN}), 404)
