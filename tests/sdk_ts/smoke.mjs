// The official TypeScript SDK against a running server: every call below parses the server's
// answer with the SDK's zod schemas, so a field of the wrong shape fails here.
// Env: OUTPOST_URL (…/api/v1), OUTPOST_KEY, RECEIVER_URL, TENANT.
import { Outpost } from "@hookdeck/outpost-sdk";
import * as errors from "@hookdeck/outpost-sdk/models/errors";

const { OUTPOST_URL, OUTPOST_KEY, RECEIVER_URL, TENANT } = process.env;
const admin = new Outpost({ apiKey: OUTPOST_KEY, serverURL: OUTPOST_URL });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function until(read, accept, what, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const health = await admin.health.check();
check(health.status === "healthy", "health");
check(Array.isArray(await admin.topics.list()), "topics");
const types = await admin.schemas.listDestinationTypes();
check(types.some((t) => t.type === "webhook"), "webhook type listed");

const tenant = await admin.tenants.upsert(TENANT, { metadata: { plan: "pro" } });
check(tenant.id === TENANT, "tenant upserted");
const destination = await admin.destinations.create(TENANT, {
  type: "webhook",
  topics: ["user.created"],
  config: { url: RECEIVER_URL },
});
check(destination.type === "webhook", "destination created");
const listed = await admin.destinations.list(TENANT);
check(listed.length === 1 && listed[0].id === destination.id, "destination listed");
await admin.destinations.update(TENANT, destination.id, {
  type: "webhook",
  topics: ["user.created", "user.updated"],
  // Flow limits ride in metadata, which the SDK passes through as a free string map.
  metadata: { "outpost.max_concurrency": "4", "outpost.rate_limit_per_second": "50" },
});
const limited = await admin.destinations.get(TENANT, destination.id);
check(
  limited.metadata?.["outpost.max_concurrency"] === "4" &&
    limited.metadata?.["outpost.rate_limit_per_second"] === "50",
  `flow limits kept in metadata: ${JSON.stringify(limited.metadata)}`,
);

const published = await admin.publish({
  tenantId: TENANT,
  topic: "user.created",
  data: { user_id: "u1", nested: { ok: true } },
  metadata: { source: "ts" },
});
check(published.destinationIds.length === 1 && published.duplicate === false, "published");

const attempts = await until(
  () => admin.attempts.list({ tenantId: TENANT, include: ["event.data", "response_data"] }),
  (page) => page.models.length > 0 && page.models[0].status === "success",
  "a successful attempt",
);
check(attempts.models[0].event?.data?.user_id === "u1", "attempt includes event data");
// The destination embedded in an attempt parses with the SDK's schema, its secret masked.
const secret = destination.credentials?.secret;
check(typeof secret === "string" && secret.length > 8, "a generated signing secret");
for (const page of [
  await admin.attempts.list({ tenantId: TENANT, include: ["destination"] }),
  await admin.destinations.listAttempts({
    tenantId: TENANT,
    destinationId: destination.id,
    include: ["destination"],
  }),
]) {
  check(page.models[0].destination?.id === destination.id, "attempt includes its destination");
  check(!JSON.stringify(page).includes(secret), "no signing secret in an attempt's destination");
}
const event = await admin.events.get(published.id);
check(event.data.nested.ok === true, "event data");
const events = await admin.events.list({ tenantId: TENANT, limit: 10 });
check(events.models.length === 1 && events.pagination.dir === "desc", "events paginated");
await admin.retry({ eventId: published.id, destinationId: destination.id });

const { token } = await admin.tenants.getToken(TENANT);
const tenantClient = new Outpost({ apiKey: token, serverURL: OUTPOST_URL });
const own = await tenantClient.tenants.list({});
check(own.models.length === 1 && own.models[0].id === TENANT, "a tenant sees only itself");
try {
  await tenantClient.publish({ tenantId: TENANT, data: {} });
  check(false, "a tenant JWT may not publish");
} catch (error) {
  check(error instanceof errors.OutpostError || error?.statusCode === 403, `typed 403: ${error}`);
}
const missing = await admin.destinations.get(TENANT, "nope").then(
  () => null,
  (error) => error,
);
check(missing?.statusCode === 404, `typed 404: ${missing}`);
await admin.destinations.delete(TENANT, destination.id);
console.log("typescript sdk: ok");
