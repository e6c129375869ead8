// `/destinations/:id/attempts/:attempt`: what was sent (headers and body), what came back (with
// copy buttons), how long it took, when an automatic retry follows, and a manual retry.

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

/** Recorded request headers as the request carried them: one `Name: value` line each. */
function headerLines(headers) {
  return headers ? Object.entries(headers).map(([name, value]) => `${name}: ${value}`).join("\n") : "";
}

/** A button that copies `text`; without clipboard access it selects `target` for Ctrl+C. */
function copyButton(label, text, target) {
  const button = h("button", { type: "button", class: "btn btn--ghost btn--small", "aria-label": `Copy ${label}` }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
  return button;
}

function block(title, text, empty, note) {
  const pre = text ? h("pre", { class: "code-block", tabindex: "0" }, h("code", {}, text)) : null;
  return h("section", { class: "card", "aria-label": title },
    h("div", { class: "block-head" }, h("h2", { class: "card__title" }, title), pre ? copyButton(title.toLowerCase(), text, pre) : null),
    note ? h("p", { class: "muted" }, note) : null,
    pre || h("p", { class: "muted" }, empty),
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

  const eventCode = h("code", {}, attempt.event_id);
  replace(ctx.main,
    backLink(back, "Back to the destination"),
    h("div", { class: "page-head" },
      h("div", { class: "title-row" }, h("h1", {}, `Attempt #${attempt.attempt_number}`), statusBadge(attempt.status)),
      retry,
    ),
    status,
    h("section", { class: "card" },
      h("dl", { class: "details" },
        h("dt", {}, "Event"), h("dd", {}, h("span", { class: "secret-row" }, eventCode, copyButton("event id", attempt.event_id, eventCode))),
        h("dt", {}, "Topic"), h("dd", {}, event.topic || "—"),
        h("dt", {}, "Response code"), h("dd", {}, attempt.code || "—"),
        h("dt", {}, "Latency"), h("dd", {}, h("span", { "data-latency": "" }, attempt.latency_ms == null ? "—" : `${attempt.latency_ms} ms`)),
        h("dt", {}, "Attempted"), h("dd", {}, time(attempt.time)),
        attempt.next_attempt_at ? h("dt", {}, "Next retry") : null,
        attempt.next_attempt_at ? h("dd", { "data-next-attempt": "" }, time(attempt.next_attempt_at)) : null,
        h("dt", {}, "Event time"), h("dd", {}, time(event.time)),
        h("dt", {}, "Kind"), h("dd", {}, attempt.manual ? "Manual retry" : attempt.attempt_number > 1 ? "Automatic retry" : "First delivery"),
        h("dt", {}, "Attempt ID"), h("dd", {}, h("code", { class: "break" }, attempt.id)),
      ),
    ),
    // Headers (or a broker message's properties) as sent, credentials masked by the server.
    block("Request headers", headerLines(attempt.request_headers),
      "No headers were recorded for this attempt: its destination type sends none beside the body, or the attempt is older than this record.",
      attempt.request_headers ? "Values that are credentials (authorization, tokens, keys) are shown as ********." : null),
    h("div", { class: "grid-2" },
      block("Request body", pretty(event.data), "This event has no data."),
      block("Response", responseText, "No response was received (for example, the connection failed)."),
    ),
    event.metadata && Object.keys(event.metadata).length ? block("Event metadata", pretty(event.metadata), "") : null,
  );
}
