"""First tenant, destination and event with the official Python SDK (pip install outpost_sdk).

KEY is the admin key (API_KEY, or the contents of outpost-data/api_key); RECEIVER_URL is where
your webhook receiver listens.
"""

import os
import time

from outpost_sdk import Outpost

KEY = os.environ["KEY"]
RECEIVER_URL = os.environ["RECEIVER_URL"]

with Outpost(api_key=KEY, server_url="http://127.0.0.1:3333/api/v1") as outpost:
    outpost.tenants.upsert(tenant_id="acme")
    dest = outpost.destinations.create(
        tenant_id="acme",
        body={"type": "webhook", "topics": ["user.created"], "config": {"url": RECEIVER_URL}},
    )
    print("destination", dest.id, "signs with", dest.credentials.secret)

    res = outpost.publish(
        request={
            "tenant_id": "acme",
            "topic": "user.created",
            "id": "evt_sdk_1",
            "data": {"user_id": "userid", "status": "active"},
            "metadata": {"source": "crm"},  # sent as the header x-outpost-source
        }
    )
    print("published", res.id, "to", res.destination_ids)

    # Delivery is asynchronous: wait for the first attempt (give up after 30 s).
    deadline = time.monotonic() + 30
    while not (attempts := outpost.attempts.list(request={"tenant_id": "acme"}).models):
        if time.monotonic() > deadline:
            raise SystemExit("no attempt yet: is the receiver reachable from the server?")
        time.sleep(0.2)
    attempt = attempts[0]
    print("attempt", attempt.code, "delivered" if attempt.status == "success" else "failed")
