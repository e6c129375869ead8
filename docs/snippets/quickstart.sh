#!/usr/bin/env bash
# First tenant, destination and event with curl. KEY is the admin key (API_KEY, or the contents
# of outpost-data/api_key); RECEIVER_URL is where your webhook receiver listens.
set -euo pipefail
OUTPOST=http://127.0.0.1:3333/api/v1
AUTH="Authorization: Bearer $KEY"

# 1. A tenant: one of your customers (201 the first time, 200 after).
curl -sS --fail-with-body -X PUT "$OUTPOST/tenants/acme" -H "$AUTH"
echo

# 2. A webhook destination of that tenant for one topic. No secret given: one is generated
#    (credentials.secret in the answer) and signs every request.
curl -sS --fail-with-body "$OUTPOST/tenants/acme/destinations" -H "$AUTH" \
  -H "Content-Type: application/json" \
  -d '{"type": "webhook", "topics": ["user.created"], "config": {"url": "'"$RECEIVER_URL"'"}}'
echo

# 3. Publish an event: 202 with the ids of the destinations it matched.
curl -sS --fail-with-body "$OUTPOST/publish" -H "$AUTH" -H "Content-Type: application/json" \
  -d '{"tenant_id": "acme", "topic": "user.created", "id": "evt_curl_1",
       "data": {"user_id": "userid", "status": "active"}}'
echo

# 4. Its delivery attempts (delivery is asynchronous: ask again if `models` is still empty).
curl -sS --fail-with-body "$OUTPOST/attempts?tenant_id=acme&event_id=evt_curl_1" -H "$AUTH"
echo
