// `/destinations/:id`: one destination — its details and actions, recent activity, how to
// receive its events, and its attempts (views/attempts.js).

import { activityChart, recentActivity } from "../chart.js";
import { h, replace, time, typeIcon } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { attemptsSection } from "./attempts.js";
import { backLink, confirmDialog, enabledBadge, errorBox, pageTitle, topicsList, typeLabel } from "./common.js";

function detail(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

// Effective flow limits: the destination's own (metadata keys the API validates), else the
// server's defaults from the page settings.
function deliveryLimits(settings, metadata) {
  const own = metadata || {};
  const concurrency = own["outpost.max_concurrency"] || settings.DESTINATION_MAX_CONCURRENCY || "";
  const rate = own["outpost.rate_limit_per_second"] ?? settings.DESTINATION_RATE_LIMIT_PER_SECOND ?? "0";
  const parts = [];
  if (concurrency) parts.push(`up to ${concurrency} at once`);
  parts.push(Number(rate) > 0 ? `${rate} per second` : "no rate limit");
  const overridden = "outpost.max_concurrency" in own || "outpost.rate_limit_per_second" in own;
  return h("span", { "data-limits": "" }, parts.join(", "),
    h("span", { class: "muted" }, overridden ? " (set for this destination)" : " (server default)"));
}

function secretValue(secret) {
  const value = h("code", { class: "secret" }, "•".repeat(24));
  let shown = false;
  const button = h("button", {
    type: "button", class: "btn btn--ghost btn--small", "aria-pressed": "false",
    onclick: () => {
      shown = !shown;
      value.textContent = shown ? secret : "•".repeat(24);
      button.textContent = shown ? "Hide" : "Show";
      button.setAttribute("aria-pressed", String(shown));
    },
  }, "Show");
  return h("span", { class: "secret-row" }, value, button);
}

function actions(ctx, destination, reload) {
  const id = destination.id;
  const status = h("div", { class: "action-errors" });
  const run = async (button, work) => {
    status.replaceChildren();
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      if (err.status !== 401) status.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  };
  const toggle = h("button", { type: "button", class: "btn btn--ghost" }, destination.disabled_at ? "Enable" : "Disable");
  toggle.addEventListener("click", () => run(toggle, async () => {
    if (destination.disabled_at) await ctx.api.enableDestination(id);
    else await ctx.api.disableDestination(id);
    ctx.announce(destination.disabled_at ? "Destination enabled" : "Destination disabled");
    await reload();
  }));
  const remove = h("button", { type: "button", class: "btn btn--danger-ghost" }, "Delete");
  remove.addEventListener("click", () => run(remove, async () => {
    const confirmed = await confirmDialog({
      title: "Delete this destination?",
      text: "It stops receiving events at once. Its attempts stay visible in your logs.",
      confirmLabel: "Delete destination",
      danger: true,
    });
    if (!confirmed) return;
    await ctx.api.deleteDestination(id);
    ctx.navigate("/");
    ctx.announce("Destination deleted");
  }));
  const rotate = destination.type === "webhook"
    ? h("button", { type: "button", class: "btn btn--ghost" }, "Rotate secret")
    : null;
  rotate?.addEventListener("click", () => run(rotate, async () => {
    const confirmed = await confirmDialog({
      title: "Rotate the signing secret?",
      text: "A new secret signs every request from now on. The current one stays valid for 24 hours, so you can update your endpoint.",
      confirmLabel: "Rotate secret",
    });
    if (!confirmed) return;
    await ctx.api.updateDestination(id, { credentials: { rotate_secret: "true" } });
    ctx.announce("Secret rotated");
    await reload();
  }));
  const test = destination.disabled_at
    ? null
    : h("button", { type: "button", class: "btn btn--ghost" }, "Send test event");
  test?.addEventListener("click", () => run(test, async () => {
    const sent = await ctx.api.sendTestEvent(id);
    ctx.announce("Test event sent");
    status.replaceChildren(h("p", { class: "alert alert--ok", role: "status" },
      "Test event ", h("code", { "data-test-event": "" }, sent.event_id), ` (${sent.topic}) sent. Its attempt appears below; press Refresh to see it.`));
  }));
  return h("div", {},
    h("div", { class: "actions" },
      h("a", { href: `/destinations/${encodeURIComponent(id)}/edit`, class: "btn", "data-link": "" }, "Edit"),
      test, toggle, rotate, remove,
    ),
    status,
  );
}

export async function renderDestination(ctx, token, id) {
  const [destination, types, topics] = await Promise.all([
    ctx.api.getDestination(id),
    ctx.api.destinationTypes(),
    ctx.api.topics(),
  ]);
  if (!ctx.current(token)) return;
  const type = types.find((t) => t.type === destination.type);
  pageTitle(ctx, destination.target || destination.id);
  const reload = () => ctx.navigate(window.location.pathname + window.location.search, { replaceState: true });

  const credentials = destination.credentials || {};
  const details = h("dl", { class: "details" },
    detail("ID", h("code", {}, destination.id)),
    detail("Type", typeLabel(types, destination.type)),
    destination.target_url ? detail("URL", h("span", { class: "break" }, destination.target_url)) : null,
    detail("Topics", topicsList(destination.topics)),
    destination.filter ? detail("Filter", h("code", { class: "break" }, JSON.stringify(destination.filter))) : null,
    credentials.secret ? detail("Signing secret", secretValue(credentials.secret)) : null,
    credentials.previous_secret_invalid_at ? detail("Previous secret valid until", time(credentials.previous_secret_invalid_at)) : null,
    detail("Delivery limits", deliveryLimits(ctx.settings, destination.metadata)),
    detail("Created", time(destination.created_at)),
    destination.disabled_at ? detail("Disabled", time(destination.disabled_at)) : null,
  );

  const activity = h("section", { class: "card", "aria-labelledby": "activity-title" },
    h("h2", { id: "activity-title", class: "card__title" }, "Last 24 hours"),
    h("p", { class: "loading muted" }, "Loading…"),
  );
  const [attempts] = await Promise.all([
    attemptsSection(ctx, destination, topics),
    recentActivity(ctx.api, destination.id).then(
      (data) => activity.lastChild.replaceWith(activityChart(data)),
      (err) => activity.lastChild.replaceWith(h("p", { class: "muted" }, `Activity is unavailable: ${err.message}`)),
    ),
  ]);
  if (!ctx.current(token)) return;

  replace(ctx.main,
    backLink("/", "All destinations"),
    h("div", { class: "page-head" },
      h("div", { class: "title-row" }, typeIcon(type), h("h1", { class: "break" }, destination.target || destination.id), enabledBadge(destination)),
    ),
    actions(ctx, destination, reload),
    h("div", { class: "grid-2" },
      h("section", { class: "card", "aria-labelledby": "details-title" }, h("h2", { id: "details-title", class: "card__title" }, "Details"), details),
      activity,
    ),
    attempts,
    guide(type),
  );
}

/** The type's own guide (its `instructions.md`): receiving events and checking signatures. */
function guide(type) {
  if (!type || !type.instructions) return null;
  return h("details", { class: "card guide", "data-guide": "" },
    h("summary", { class: "card__title guide__summary" }, `Receiving ${type.label} events and verifying them`),
    h("div", { class: "guide__body" }, renderMarkdown(type.instructions, 3)),
  );
}
