// A destination's attempts: filters kept in the URL (so Back and reload keep the view), a retry
// per row, markers from the event's other attempts, and "retry everything failed in this view".

import { h, time, uid } from "../dom.js";
import { statusBadge } from "./common.js";
import { recoveryPanel, retryFailedButton } from "./recovery.js";

const HOUR = 3600 * 1000;
export const RANGES = [["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["custom", "Custom…"]];
const RANGE_MS = { "1h": HOUR, "24h": 24 * HOUR, "7d": 7 * 24 * HOUR };

export function attemptsQuery() {
  const params = new URLSearchParams(window.location.search);
  return {
    status: params.get("status") || "",
    topic: params.getAll("topic").filter(Boolean),
    event: params.get("event") || "",
    range: params.get("range") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
    recovery: params.get("recovery") || "",
    next: params.get("next") || "",
    prev: params.get("prev") || "",
  };
}

export function attemptsUrl(id, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) if (item) params.append(key, item);
  }
  const text = params.toString();
  return `/destinations/${encodeURIComponent(id)}${text ? `?${text}` : ""}`;
}

/** The view's time window as ISO strings (`since` inclusive, `until` exclusive or undefined). */
export function timeWindow(query, now = Date.now()) {
  if (RANGE_MS[query.range]) return { since: new Date(now - RANGE_MS[query.range]).toISOString() };
  if (query.range !== "custom") return {};
  const parse = (local) => {
    const at = local ? new Date(local) : null;
    return at && !Number.isNaN(at.getTime()) ? at.toISOString() : undefined;
  };
  return { since: parse(query.from), until: parse(query.to) };
}

function filtersForm(ctx, destination, query, topicChoices) {
  const id = destination.id;
  const ids = { status: uid("status"), range: uid("range"), event: uid("event"), from: uid("from"), to: uid("to"), topic: uid("topic") };
  const statusSelect = h("select", { id: ids.status, class: "input input--inline", name: "status" },
    [["", "All statuses"], ["success", "Successful"], ["failed", "Failed"]].map(([value, label]) =>
      h("option", { value, selected: query.status === value }, label)),
  );
  const rangeSelect = h("select", { id: ids.range, class: "input input--inline", name: "range" },
    RANGES.map(([value, label]) => h("option", { value, selected: query.range === value }, label)));
  const from = h("input", { id: ids.from, type: "datetime-local", class: "input input--inline", name: "from", value: query.from });
  const to = h("input", { id: ids.to, type: "datetime-local", class: "input input--inline", name: "to", value: query.to });
  const custom = h("span", { class: "filters__group", hidden: query.range !== "custom" },
    h("label", { for: ids.from, class: "filters__label" }, "From"), from,
    h("label", { for: ids.to, class: "filters__label" }, "To"), to);
  const eventInput = h("input", {
    id: ids.event, type: "search", class: "input input--inline", name: "event", value: query.event,
    placeholder: "evt_…", autocomplete: "off", spellcheck: "false",
  });

  // Several topics at once: checkboxes in a disclosure when the server lists its topics,
  // otherwise a comma-separated text field.
  let topicControl;
  let chosenTopics;
  if (topicChoices.length) {
    const boxes = topicChoices.map((t) => h("input", { type: "checkbox", class: "checkbox", value: t, checked: query.topic.includes(t) }));
    const summary = query.topic.length ? `Topics: ${query.topic.length === 1 ? query.topic[0] : `${query.topic.length} selected`}` : "Topics: all";
    topicControl = h("details", { class: "multi" },
      h("summary", { class: "input input--inline multi__summary" }, summary),
      h("fieldset", { class: "multi__menu" },
        h("legend", { class: "sr-only" }, "Topics"),
        boxes.map((box) => h("label", { class: "check" }, box, box.value))),
    );
    chosenTopics = () => boxes.filter((b) => b.checked).map((b) => b.value);
    for (const box of boxes) box.addEventListener("change", () => apply());
  } else {
    const input = h("input", {
      id: ids.topic, class: "input input--inline", name: "topic", value: query.topic.join(", "),
      placeholder: "Any topic", autocomplete: "off",
    });
    topicControl = h("span", { class: "filters__group" }, h("label", { for: ids.topic, class: "filters__label" }, "Topics"), input);
    chosenTopics = () => input.value.split(",").map((t) => t.trim()).filter(Boolean);
  }

  function apply(event) {
    event?.preventDefault();
    const range = rangeSelect.value;
    ctx.navigate(attemptsUrl(id, {
      status: statusSelect.value,
      topic: chosenTopics(),
      event: eventInput.value.trim(),
      range,
      from: range === "custom" ? from.value : "",
      to: range === "custom" ? to.value : "",
      recovery: query.recovery,
    }), { replaceState: true });
  }
  statusSelect.addEventListener("change", apply);
  rangeSelect.addEventListener("change", () => {
    if (rangeSelect.value === "custom") {
      custom.hidden = false;
      from.focus();
    } else {
      apply();
    }
  });
  from.addEventListener("change", apply);
  to.addEventListener("change", apply);

  return h("form", { class: "filters", role: "search", "aria-label": "Filter attempts", onsubmit: apply },
    h("span", { class: "filters__group" }, h("label", { for: ids.status, class: "filters__label" }, "Status"), statusSelect),
    h("span", { class: "filters__group" }, h("label", { for: ids.range, class: "filters__label" }, "Time"), rangeSelect),
    custom,
    topicControl,
    h("span", { class: "filters__group" }, h("label", { for: ids.event, class: "filters__label" }, "Event ID"), eventInput),
    h("button", { type: "submit", class: "btn btn--ghost btn--small" }, "Apply"),
    h("button", { type: "button", class: "btn btn--ghost btn--small", onclick: () => ctx.navigate(window.location.pathname + window.location.search, { replaceState: true }) }, "Refresh"),
  );
}

// The other attempts of the failed rows' events, in one request: per event, its latest attempt
// number and its latest successful one. A failed row whose event succeeded later is marked so.
async function eventHistory(ctx, destinationId, models) {
  const failedIds = [...new Set(models.filter((a) => a.status !== "success").map((a) => a.event_id))];
  const history = new Map();
  if (!failedIds.length) return history;
  try {
    const page = await ctx.api.listAttempts(destinationId, { event_id: failedIds, limit: 1000 });
    for (const a of page.models) {
      const seen = history.get(a.event_id) || { latest: 0, success: 0 };
      seen.latest = Math.max(seen.latest, a.attempt_number);
      if (a.status === "success") seen.success = Math.max(seen.success, a.attempt_number);
      history.set(a.event_id, seen);
    }
  } catch {
    // markers are a hint; the list stands without them
  }
  return history;
}

function marker(kind, text, title) {
  return h("span", { class: "badge badge--hint", "data-marker": kind, title }, ...[text].flat());
}

function rowRetry(ctx, destination, attempt) {
  const button = h("button", {
    type: "button", class: "btn btn--ghost btn--small", "aria-label": `Retry ${attempt.event_id}`,
  }, "Retry");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await ctx.api.retry(attempt.event_id, destination.id);
      button.textContent = "Queued";
      ctx.announce(`Retry of ${attempt.event_id} queued`);
    } catch (err) {
      button.disabled = false;
      if (err.status !== 401) ctx.announce(`Retry failed: ${err.message}`);
    }
  });
  return button;
}

export async function attemptsSection(ctx, destination, topics) {
  const id = destination.id;
  const query = attemptsQuery();
  const window_ = timeWindow(query);
  const page = await ctx.api.listAttempts(id, {
    include: ["event"],
    status: query.status,
    topic: query.topic.length ? query.topic : undefined,
    event_id: query.event ? [query.event] : undefined,
    "time[gte]": window_.since,
    "time[lt]": window_.until,
    limit: 20,
    next: query.next,
    prev: query.prev,
  });
  const history = await eventHistory(ctx, id, page.models);
  const topicChoices = topics.length ? topics : (destination.topics || []).filter((t) => t !== "*" && !t.includes("*"));

  const rows = page.models.map((a) => {
    const href = `/destinations/${encodeURIComponent(id)}/attempts/${encodeURIComponent(a.id)}`;
    const seen = history.get(a.event_id);
    const deliveredLater = a.status !== "success" && seen && seen.success > a.attempt_number;
    // The server says when the automatic retry this attempt scheduled is due, while it waits.
    const retrying = !deliveredLater && a.next_attempt_at;
    return h("tr", { "data-attempt": a.id },
      h("td", { "data-label": "Status" }, h("span", { class: "status-cell" }, statusBadge(a.status), a.code ? h("span", { class: "code" }, a.code) : null,
        deliveredLater ? marker("delivered-later", "Delivered later", "A later attempt of this event succeeded") : null,
        retrying ? marker("retrying", ["Next retry at ", time(a.next_attempt_at)], "An automatic retry of this event is scheduled") : null,
        a.event?.metadata?.["outpost-test"] === "true" ? marker("test", "Test event", "Sent with “Send test event”") : null)),
      h("td", { "data-label": "Topic" }, a.event?.topic || "—"),
      h("td", { "data-label": "Event", class: "cell-mono" }, h("a", { href, "data-link": "", class: "row-link" }, a.event_id)),
      h("td", { "data-label": "Attempt" }, `#${a.attempt_number}${a.manual ? " (manual)" : ""}`),
      h("td", { "data-label": "Time" }, time(a.time)),
      h("td", { "data-label": "" }, destination.disabled_at ? null : rowRetry(ctx, destination, a)),
    );
  });
  const { next, prev } = page.pagination;
  const keep = { ...query, next: "", prev: "" };
  const pager = h("nav", { class: "pager", "aria-label": "Attempt pages" },
    h("button", { type: "button", class: "btn btn--ghost btn--small", disabled: !prev, onclick: () => ctx.navigate(attemptsUrl(id, { ...keep, prev })) }, "← Newer"),
    h("button", { type: "button", class: "btn btn--ghost btn--small", disabled: !next, onclick: () => ctx.navigate(attemptsUrl(id, { ...keep, next })) }, "Older →"),
  );
  const filtered = query.status || query.topic.length || query.event || query.range;
  const table = page.models.length
    ? h("table", { class: "table table--stack", "aria-label": "Attempts" },
        h("thead", {}, h("tr", {}, ["Status", "Topic", "Event", "Attempt", "Time", ""].map((c) => h("th", { scope: "col" }, c ? c : h("span", { class: "sr-only" }, "Actions"))))),
        h("tbody", {}, rows))
    : h("p", { class: "empty muted" }, filtered ? "No attempts match these filters." : "No attempts yet. They appear here as events are delivered.");

  // A recovery job covers topics and a time window (of event time; the list filters on attempt
  // time), not a single event id; a view of successes has nothing failed in it.
  const bulk = destination.disabled_at || query.event || query.status === "success"
    ? null
    : retryFailedButton(ctx, destination, query, window_, (recoveryId) =>
        ctx.navigate(attemptsUrl(id, { ...keep, recovery: recoveryId }), { replaceState: true }));
  // `data-query`: the address this list was drawn for (tests wait on it after a change).
  return h("section", { class: "card", "aria-labelledby": "attempts-title", "data-query": window.location.search },
    h("div", { class: "card__head" },
      h("h2", { id: "attempts-title", class: "card__title" }, "Attempts"),
      bulk,
    ),
    query.recovery ? recoveryPanel(ctx, query.recovery, () => ctx.navigate(attemptsUrl(id, { ...keep, recovery: "" }), { replaceState: true })) : null,
    filtersForm(ctx, destination, query, topicChoices),
    table,
    next || prev ? pager : null,
  );
}
