// The destinations list's health strip: each destination's last 24 hours, hour by hour, and its
// success rate, from ONE `GET /metrics/attempts` request split by destination_id.

import { h, srOnly } from "./dom.js";

const HOUR = 3600 * 1000;
const HOURS = 24;

/** destination id → {hours: [{ok, total}], ok, total}; rejects when metrics are unavailable. */
export async function healthByDestination(api, now = Date.now()) {
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  const start = end - HOURS * HOUR;
  const result = await api.attemptMetrics({
    "time[start]": new Date(start).toISOString(),
    "time[end]": new Date(end).toISOString(),
    granularity: "1h",
    measures: ["count", "successful_count"],
    dimensions: ["destination_id"],
  });
  const health = new Map();
  for (const point of result.data || []) {
    const id = point.dimensions?.destination_id;
    if (!id) continue;
    if (!health.has(id)) {
      health.set(id, { hours: Array.from({ length: HOURS }, () => ({ ok: 0, total: 0 })), ok: 0, total: 0 });
    }
    const entry = health.get(id);
    const index = Math.floor((Date.parse(point.time_bucket) - start) / HOUR);
    const total = point.metrics.count || 0;
    const ok = point.metrics.successful_count || 0;
    entry.ok += ok;
    entry.total += total;
    if (index >= 0 && index < HOURS) {
      entry.hours[index].ok += ok;
      entry.hours[index].total += total;
    }
  }
  return health;
}

function cellClass({ ok, total }) {
  if (!total) return "health__cell";
  if (ok === total) return "health__cell health__cell--ok";
  return ok ? "health__cell health__cell--mixed" : "health__cell health__cell--bad";
}

/** The strip for one destination (`entry` undefined: no attempts in 24 hours). */
export function healthStrip(entry) {
  if (!entry || !entry.total) {
    return h("span", { class: "health muted", "data-health": "none" }, "No attempts in 24 h");
  }
  const rate = Math.floor((entry.ok / entry.total) * 1000) / 10; // never rounds up to 100 %
  return h("span", { class: "health", "data-health": String(rate) },
    h("span", { class: "health__cells", "aria-hidden": "true" },
      entry.hours.map((hour) => h("span", { class: cellClass(hour), title: hour.total ? `${hour.ok} of ${hour.total} successful` : "no attempts" }))),
    h("span", { class: "health__rate" }, `${rate}%`),
    srOnly(` successful: ${entry.ok} of ${entry.total} attempts in the last 24 hours`),
  );
}
