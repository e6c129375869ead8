// Every operation of the TypeScript SDK (1.6.0) with every value of its enums and every include
// option, against a running server; each answer is parsed by the SDK's zod schemas.
// Env: OUTPOST_URL (…/api/v1), OUTPOST_KEY, RECEIVER_URL (answers 200), FAIL_URL (answers 500),
// TENANT.
import { Outpost } from "@hookdeck/outpost-sdk";
import * as operations from "@hookdeck/outpost-sdk/models/operations";

const { OUTPOST_URL, OUTPOST_KEY, RECEIVER_URL, FAIL_URL, TENANT } = process.env;
const admin = new Outpost({ apiKey: OUTPOST_KEY, serverURL: OUTPOST_URL });
const INCLUDES = [[], ["event"], ["event.data"], ["response_data"], ["destination"],
  ["event", "event.data", "response_data", "destination"]];

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function until(read, accept, what, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function refused(call, status, what) {
  const error = await call().then(() => null, (e) => e);
  check(error?.statusCode === status, `${what}: expected ${status}, got ${error}`);
  const body = JSON.parse(error.body);
  check(body.status === status && typeof body.message === "string", `${what}: error shape ${error.body}`);
  return body;
}

function checkAttempt(a, include) {
  check(a.tenantId === TENANT && ["success", "failed"].includes(a.status), `attempt ${a.id}`);
  if (include.includes("event") || include.includes("event.data")) {
    check(a.event?.id === a.eventId, `include event on ${a.id}`);
  }
  if (include.includes("event.data")) check(a.event?.data !== undefined, "include event.data");
  if (include.includes("response_data")) check(a.responseData?.status !== undefined, "response_data");
  if (include.includes("destination")) check(a.destination?.id === a.destinationId, "destination");
}

// health, topics, destination types
check((await admin.health.check()).status === "healthy", "health");
check(Array.isArray(await admin.topics.list()), "topics");
const types = await admin.schemas.listDestinationTypes();
for (const type of Object.values(operations.GetDestinationTypeSchemaType)) {
  check(types.some((t) => t.type === type), `type ${type} listed`);
  check((await admin.schemas.getDestinationType(type)).type === type, `type ${type}`);
}

// tenants
await admin.tenants.upsert(TENANT, { metadata: { plan: "pro" } });
check((await admin.tenants.get(TENANT)).metadata?.plan === "pro", "tenant get");
for (const dir of Object.values(operations.ListTenantsDir)) {
  const page = await admin.tenants.list({ id: [TENANT], dir });
  check(page.models.length === 1 && page.models[0].id === TENANT, `tenants list ${dir}`);
}
for (const theme of [undefined, ...Object.values(operations.Theme)]) {
  const { redirectUrl } = await admin.tenants.getPortalUrl(TENANT, theme);
  check(redirectUrl.startsWith("http") && (!theme || redirectUrl.includes(`theme=${theme}`)), `portal ${theme}`);
}
check((await admin.tenants.getToken(TENANT)).token.split(".").length === 3, "token");

// destinations
const good = await admin.destinations.create(TENANT, {
  type: "webhook", topics: ["user.created"], config: { url: RECEIVER_URL },
});
const bad = await admin.destinations.create(TENANT, {
  type: "webhook", topics: ["user.deleted"], config: { url: FAIL_URL },
});
check((await admin.destinations.list(TENANT, "webhook")).length === 2, "list by type");
check((await admin.destinations.list(TENANT, undefined, ["user.deleted"]))[0]?.id === bad.id, "list by topic");
check((await admin.destinations.get(TENANT, good.id)).id === good.id, "destination get");
check((await admin.destinations.disable(TENANT, good.id)).disabledAt, "disable");
check(!(await admin.destinations.enable(TENANT, good.id)).disabledAt, "enable");
await admin.destinations.update(TENANT, good.id, { type: "webhook", topics: ["user.created"] });

// publish, attempts, events
const created = await admin.publish({ tenantId: TENANT, topic: "user.created", data: { n: 1 } });
const deleted = await admin.publish({ tenantId: TENANT, topic: "user.deleted", data: { n: 2 } });
check((await admin.publish({ id: created.id, tenantId: TENANT, topic: "user.created", data: {} })).duplicate, "duplicate");
await until(() => admin.attempts.list({ tenantId: TENANT }), (p) => p.models.length >= 3, "3 attempts");

for (const status of Object.values(operations.ListAttemptsStatus)) {
  const page = await admin.attempts.list({ tenantId: TENANT, status });
  check(page.models.length > 0 && page.models.every((a) => a.status === status), `attempts ${status}`);
}
for (const dir of Object.values(operations.ListAttemptsDir)) {
  const page = await admin.attempts.list({ tenantId: TENANT, dir, orderBy: "time" });
  const times = page.models.map((a) => a.time.getTime());
  const sorted = [...times].sort((x, y) => (dir === "asc" ? x - y : y - x));
  check(JSON.stringify(times) === JSON.stringify(sorted), `attempts ${dir}`);
}
const badRows = (await admin.destinations.listAttempts({ tenantId: TENANT, destinationId: bad.id })).models;
for (const include of INCLUDES) {
  for (const a of (await admin.attempts.list({ tenantId: TENANT, include })).models) checkAttempt(a, include);
  checkAttempt(await admin.attempts.get(badRows[0].id, undefined, include), include);
  const page = await admin.destinations.listAttempts({ tenantId: TENANT, destinationId: bad.id, include });
  for (const a of page.models) checkAttempt(a, include);
  checkAttempt(await admin.destinations.getAttempt(TENANT, bad.id, badRows[0].id, include), include);
}
for (const status of Object.values(operations.ListTenantDestinationAttemptsStatus)) {
  const page = await admin.destinations.listAttempts({ tenantId: TENANT, destinationId: bad.id, status });
  check(page.models.every((a) => a.status === status), `destination attempts ${status}`);
}
for (const dir of Object.values(operations.ListTenantDestinationAttemptsDir)) {
  await admin.destinations.listAttempts({ tenantId: TENANT, destinationId: bad.id, dir, orderBy: "time" });
}
for (const dir of Object.values(operations.ListEventsDir)) {
  const page = await admin.events.list({ tenantId: TENANT, dir, orderBy: "time" });
  check(page.models.length === 2 && page.pagination.dir === dir, `events ${dir}`);
}
check((await admin.events.get(deleted.id, TENANT)).topic === "user.deleted", "event get");
for (const limit of [0, 1001, -1]) {
  await refused(() => admin.events.list({ tenantId: TENANT, limit }), 400, `events limit ${limit}`);
  await refused(() => admin.attempts.list({ tenantId: TENANT, limit }), 400, `attempts limit ${limit}`);
  await refused(
    () => admin.destinations.listAttempts({ tenantId: TENANT, destinationId: good.id, limit }),
    400,
    `destination attempts limit ${limit}`,
  );
}
await refused(
  () => admin.destinations.listAttempts({ tenantId: TENANT, destinationId: "des_unknown" }),
  404,
  "unknown destination's attempts",
);

// retry: only an earlier attempt is repeated
await admin.retry({ eventId: created.id, destinationId: good.id });
const newcomer = await admin.destinations.create(TENANT, {
  type: "webhook", topics: "*", config: { url: RECEIVER_URL },
});
const body = await refused(
  () => admin.retry({ eventId: created.id, destinationId: newcomer.id }),
  400,
  "retry without an earlier attempt",
);
check(body.data?.error === "no_prior_attempt", "no_prior_attempt");

// metrics: every measure and dimension this SDK knows
const time = { start: new Date(Date.now() - 3600_000), end: new Date(Date.now() + 60_000) };
for (const dimension of Object.values(operations.GetAttemptMetricsDimensionsEnum2)) {
  const answer = await admin.metrics.getAttemptMetrics({
    time, measures: Object.values(operations.GetAttemptMetricsMeasuresEnum2),
    dimensions: [dimension], granularity: "1h", filtersTenantId: TENANT,
  });
  check(answer.data.length > 0, `attempt metrics by ${dimension}`);
}
for (const dimension of Object.values(operations.GetEventMetricsDimensionsEnum2)) {
  const answer = await admin.metrics.getEventMetrics({
    time, measures: Object.values(operations.GetEventMetricsMeasuresEnum2),
    dimensions: [dimension], filtersTenantId: TENANT,
  });
  check(answer.data.length > 0, `event metrics by ${dimension}`);
}

// managed-only: 404 in Outpost's error shape
await refused(() => admin.configuration.getManagedConfig(), 404, "managed config");
await refused(() => admin.configuration.updateManagedConfig({}), 404, "managed config update");

// deletions
for (const d of [good, bad, newcomer]) await admin.destinations.delete(TENANT, d.id);
await refused(() => admin.destinations.getAttempt(TENANT, bad.id, badRows[0].id), 404, "deleted destination's attempt");
check((await admin.tenants.delete(TENANT)).success, "tenant deleted");
await refused(() => admin.tenants.get(TENANT), 404, "deleted tenant");
console.log("typescript sdk walk: ok");
