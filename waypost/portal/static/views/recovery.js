// "Retry everything failed in this view" as a recovery job (this server's /recoveries
// extension), and the panel that follows the job's progress by polling it.

import { h } from "../dom.js";
import { confirmDialog, errorBox } from "./common.js";

const POLL_MS = 1000;

/** The job's selection for the attempts view: this destination, its topics and time window. */
function selection(destination, query, window_) {
  const body = { destination_id: destination.id, status: "failed" };
  if (query.topic.length) body.topics = query.topic;
  if (window_.since) body.since = window_.since;
  // The API refuses an `until` in the future; "until now" is its default.
  if (window_.until && Date.parse(window_.until) < Date.now()) body.until = window_.until;
  return body;
}

export function retryFailedButton(ctx, destination, query, window_, started) {
  const errors = h("div", { class: "action-errors" });
  const button = h("button", { type: "button", class: "btn btn--ghost btn--small" }, "Retry all failed in this view");
  button.addEventListener("click", async () => {
    errors.replaceChildren();
    button.disabled = true;
    try {
      const body = selection(destination, query, window_);
      const counted = await ctx.api.createRecovery({ ...body, dry_run: true });
      if (!counted.matched) {
        ctx.announce("Nothing to retry: every event in this view was delivered");
        return;
      }
      const confirmed = await confirmDialog({
        title: `Retry ${counted.matched} failed ${counted.matched === 1 ? "event" : "events"}?`,
        text: "Each event in this view that never reached this destination is sent again once, at the destination's usual pace.",
        confirmLabel: "Retry them",
      });
      if (!confirmed) return;
      const job = await ctx.api.createRecovery(body);
      ctx.announce("Recovery started");
      started(job.id);
    } catch (err) {
      if (err.status !== 401) errors.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "card__head-actions" }, button, errors);
}

function describe(job) {
  const total = job.matched ?? "…";
  const parts = [`${job.enqueued} of ${total} queued`, `${job.delivered} delivered`, `${job.failed} failed`];
  if (job.pending) parts.push(`${job.pending} in progress`);
  return parts.join(" · ");
}

/** Follows one job until it has ended and its deliveries have finished; stops when left. */
export function recoveryPanel(ctx, recoveryId, dismiss) {
  const title = h("p", { class: "recovery__title" }, "Retrying failed events…");
  const bar = h("progress", { class: "recovery__bar", max: "1", value: "0", "aria-label": "Recovery progress" });
  const text = h("p", { class: "recovery__text muted", "data-recovery-progress": "" }, "Starting…");
  const cancel = h("button", { type: "button", class: "btn btn--ghost btn--small" }, "Cancel");
  const close = h("button", { type: "button", class: "btn btn--ghost btn--small", hidden: true, onclick: dismiss }, "Dismiss");
  const panel = h("div", { class: "recovery", role: "status", "data-recovery": recoveryId, "data-state": "running" },
    h("div", { class: "recovery__head" }, title, cancel, close), bar, text);

  const show = (job) => {
    panel.dataset.state = job.state;
    const done = job.delivered + job.failed;
    bar.max = job.matched || Math.max(job.enqueued, 1);
    bar.value = done;
    text.textContent = describe(job);
    const finished = job.state !== "running" && !job.pending;
    if (finished) {
      panel.dataset.state = job.state === "cancelled" ? "cancelled" : "finished";
      title.textContent = job.state === "cancelled" ? "Recovery cancelled" : "Recovery finished";
      cancel.hidden = true;
      close.hidden = false;
    }
    return finished;
  };
  const poll = async () => {
    if (!panel.isConnected && panel.dataset.polled) return; // the view changed: stop
    panel.dataset.polled = "1";
    try {
      if (show(await ctx.api.getRecovery(recoveryId))) return;
    } catch (err) {
      if (err.status === 401) return;
      text.textContent = `Progress is unavailable: ${err.message}`;
      if (err.status === 404) return;
    }
    setTimeout(poll, POLL_MS);
  };
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      show(await ctx.api.cancelRecovery(recoveryId));
    } catch (err) {
      if (err.status !== 401) text.textContent = `Could not cancel: ${err.message}`;
    } finally {
      cancel.disabled = false;
    }
  });
  poll();
  return panel;
}
