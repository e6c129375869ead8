// Recent successes and failures: from `GET /metrics/attempts` when the server has it, otherwise
// counted from the destination's attempts. Drawn as stacked SVG bars, one per hour.

import { h, srOnly, svg } from "./dom.js";

const HOUR = 3600 * 1000;
const HOURS = 24;
const FALLBACK_PAGES = 5; // at most 5 × 1000 attempts are counted without the metrics endpoint

function slots(now) {
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  const start = end - HOURS * HOUR;
  return { start, end };
}

function empty(start) {
  return Array.from({ length: HOURS }, (_, i) => ({ time: start + i * HOUR, ok: 0, failed: 0 }));
}

async function fromMetrics(api, destinationId, start, end) {
  const result = await api.attemptMetrics({
    "time[start]": new Date(start).toISOString(),
    "time[end]": new Date(end).toISOString(),
    granularity: "1h",
    measures: ["successful_count", "failed_count"],
    "filters[destination_id]": [destinationId],
  });
  const buckets = empty(start);
  for (const point of result.data || []) {
    const at = Date.parse(point.time_bucket);
    const index = Math.floor((at - start) / HOUR);
    if (index < 0 || index >= HOURS) continue;
    buckets[index].ok += point.metrics.successful_count || 0;
    buckets[index].failed += point.metrics.failed_count || 0;
  }
  return { buckets, partial: false };
}

async function fromAttempts(api, destinationId, start) {
  const buckets = empty(start);
  let next;
  for (let page = 0; page < FALLBACK_PAGES; page += 1) {
    const result = await api.listAttempts(destinationId, {
      "time[gte]": new Date(start).toISOString(),
      limit: 1000,
      next,
    });
    for (const attempt of result.models) {
      const index = Math.floor((Date.parse(attempt.time) - start) / HOUR);
      if (index < 0 || index >= HOURS) continue;
      if (attempt.status === "success") buckets[index].ok += 1;
      else buckets[index].failed += 1;
    }
    next = result.pagination.next;
    if (!next) return { buckets, partial: false };
  }
  return { buckets, partial: true };
}

/** The last 24 hours, hour by hour; tolerant of servers without the metrics API. */
export async function recentActivity(api, destinationId, now = Date.now()) {
  const { start, end } = slots(now);
  try {
    return await fromMetrics(api, destinationId, start, end);
  } catch (err) {
    if (err.status === 401) throw err;
    return fromAttempts(api, destinationId, start);
  }
}

export function activityChart({ buckets, partial }) {
  const ok = buckets.reduce((n, b) => n + b.ok, 0);
  const failed = buckets.reduce((n, b) => n + b.failed, 0);
  const peak = Math.max(1, ...buckets.map((b) => b.ok + b.failed));
  const width = 480;
  const height = 120;
  const gap = 3;
  const barWidth = width / buckets.length - gap;
  const bars = buckets.flatMap((b, i) => {
    const x = i * (barWidth + gap);
    const okHeight = (b.ok / peak) * height;
    const failedHeight = (b.failed / peak) * height;
    const label = `${new Date(b.time).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}: ${b.ok} successful, ${b.failed} failed`;
    return [
      svg("rect", { x, y: 0, width: barWidth, height, class: "chart__slot" }, svg("title", {}, label)),
      okHeight ? svg("rect", { x, y: height - okHeight, width: barWidth, height: okHeight, class: "chart__ok" }, svg("title", {}, label)) : null,
      failedHeight ? svg("rect", { x, y: height - okHeight - failedHeight, width: barWidth, height: failedHeight, class: "chart__failed" }, svg("title", {}, label)) : null,
    ];
  });
  const summary = `Last 24 hours: ${ok} successful and ${failed} failed attempts${partial ? " (latest 5000 counted)" : ""}.`;
  const first = new Date(buckets[0].time);
  const mid = new Date(buckets[Math.floor(buckets.length / 2)].time);
  const hour = { hour: "2-digit", minute: "2-digit" };
  return h("figure", { class: "chart" },
    h("div", { class: "chart__totals" },
      h("span", { class: "stat" }, h("span", { class: "dot dot--ok", "aria-hidden": "true" }), h("strong", { class: "stat__value", "data-stat": "successful" }, String(ok)), " successful"),
      h("span", { class: "stat" }, h("span", { class: "dot dot--failed", "aria-hidden": "true" }), h("strong", { class: "stat__value", "data-stat": "failed" }, String(failed)), " failed"),
    ),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "chart__svg", role: "img", "aria-label": summary }, bars),
    h("div", { class: "chart__axis", "aria-hidden": "true" },
      h("span", {}, first.toLocaleTimeString(undefined, hour)),
      h("span", {}, mid.toLocaleTimeString(undefined, hour)),
      h("span", {}, "Now"),
    ),
    h("figcaption", {}, srOnly(summary)),
  );
}
