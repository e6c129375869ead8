// `/destinations/:id/attempts/:attempt`: what was sent, what came back, and a manual retry.

import { h, replace, time } from "../dom.js";
import { backLink, errorBox, pageTitle, statusBadge } from "./common.js";

function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function block(title, text, empty) {
  return h("section", { class: "card" },
    h("h2", { class: "card__title" }, title),
    text ? h("pre", { class: "code-block", tabindex: "0" }, h("code", {}, text)) : h("p", { class: "muted" }, empty),
  );
}

export async function renderAttempt(ctx, token, destinationId, attemptId) {
  const attempt = await ctx.api.getAttempt(destinationId, attemptId, { include: ["event.data", "response_data"] });
  if (!ctx.current(token)) return;
  const back = `/destinations/${encodeURIComponent(destinationId)}`;
  const event = attempt.event || {};
  const response = attempt.response_data;
  pageTitle(ctx, `Attempt ${attempt.attempt_number} of ${attempt.event_id}`);

  const status = h("div", { class: "action-errors" });
  const retry = h("button", { type: "button", class: "btn" }, "Retry");
  retry.addEventListener("click", async () => {
    status.replaceChildren();
    retry.disabled = true;
    try {
      await ctx.api.retry(attempt.event_id, destinationId);
      ctx.announce("Retry queued");
      status.replaceChildren(h("p", { class: "alert alert--ok", role: "status" },
        "Retry queued. ", h("a", { href: back, "data-link": "" }, "See the attempts"), "."));
    } catch (err) {
      if (err.status !== 401) status.replaceChildren(errorBox(err));
    } finally {
      retry.disabled = false;
    }
  });

  const responseText = response
    ? [response.status ?? response.status_code ? `HTTP ${response.status ?? response.status_code}` : "", pretty(response.body ?? response.error ?? response)].filter(Boolean).join("\n\n")
    : "";

  replace(ctx.main,
    backLink(back, "Back to the destination"),
    h("div", { class: "page-head" },
      h("div", { class: "title-row" }, h("h1", {}, `Attempt #${attempt.attempt_number}`), statusBadge(attempt.status)),
      retry,
    ),
    status,
    h("section", { class: "card" },
      h("dl", { class: "details" },
        h("dt", {}, "Event"), h("dd", {}, h("code", {}, attempt.event_id)),
        h("dt", {}, "Topic"), h("dd", {}, event.topic || "—"),
        h("dt", {}, "Response code"), h("dd", {}, attempt.code || "—"),
        h("dt", {}, "Latency"), h("dd", { "data-latency": "" }, attempt.latency_ms == null ? "—" : `${attempt.latency_ms} ms`),
        h("dt", {}, "Attempted"), h("dd", {}, time(attempt.time)),
        h("dt", {}, "Event time"), h("dd", {}, time(event.time)),
        h("dt", {}, "Kind"), h("dd", {}, attempt.manual ? "Manual retry" : attempt.attempt_number > 1 ? "Automatic retry" : "First delivery"),
        h("dt", {}, "Attempt ID"), h("dd", {}, h("code", { class: "break" }, attempt.id)),
      ),
    ),
    h("div", { class: "grid-2" },
      block("Event data", pretty(event.data), "This event has no data."),
      block("Response", responseText, "No response was received (for example, the connection failed)."),
    ),
    event.metadata && Object.keys(event.metadata).length ? block("Event metadata", pretty(event.metadata), "") : null,
  );
}
