import { h } from "../dom.js";

export function pageTitle(ctx, title) {
  const org = ctx.settings.ORGANIZATION_NAME;
  document.title = org ? `${title} · ${org}` : title;
}

export function topicsList(topics) {
  if (!topics || !topics.length || (topics.length === 1 && topics[0] === "*")) {
    return h("span", { class: "chip chip--all" }, "All topics");
  }
  const shown = topics.slice(0, 3).map((t) => h("span", { class: "chip" }, t));
  const more = topics.length > 3 ? h("span", { class: "chip chip--more" }, `+${topics.length - 3}`) : null;
  return h("span", { class: "chips" }, shown, more);
}

export function enabledBadge(destination) {
  return destination.disabled_at
    ? h("span", { class: "badge badge--muted" }, "Disabled")
    : h("span", { class: "badge badge--ok" }, "Active");
}

export function statusBadge(status) {
  return status === "success"
    ? h("span", { class: "badge badge--ok" }, "Successful")
    : h("span", { class: "badge badge--bad" }, "Failed");
}

export function typeLabel(types, type) {
  const found = types.find((t) => t.type === type);
  return found ? found.label : type;
}

export function backLink(href, text) {
  return h("a", { href, class: "back-link", "data-link": "" }, h("span", { "aria-hidden": "true" }, "← "), text);
}

/** A modal confirmation; resolves true when confirmed. Escape and Cancel resolve false. */
export function confirmDialog({ title, text, confirmLabel, danger }) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${Date.now()}`;
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog", class: "dialog__body" },
        h("h2", { id: titleId, class: "dialog__title" }, title),
        h("p", {}, text),
        h("div", { class: "actions actions--end" },
          h("button", { type: "submit", value: "cancel", class: "btn btn--ghost" }, "Cancel"),
          h("button", { type: "submit", value: "confirm", class: danger ? "btn btn--danger" : "btn" }, confirmLabel),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** An inline error box for a failed request, listing validation details. */
export function errorBox(err) {
  const details = err.details || [];
  return h("div", { class: "alert alert--error", role: "alert", tabindex: "-1" },
    h("p", { class: "alert__title" }, err.message || "The request failed."),
    details.length ? h("ul", { class: "alert__list" }, details.map((d) => h("li", {}, d))) : null,
  );
}
