import { h, replace, typeIcon } from "../dom.js";
import { healthByDestination, healthStrip } from "../health.js";
import { enabledBadge, pageTitle, topicsList, typeLabel } from "./common.js";

/** `/`: every destination of the tenant. */
export async function renderDestinations(ctx, token) {
  const [destinations, types] = await Promise.all([ctx.api.listDestinations(), ctx.api.destinationTypes()]);
  if (!ctx.current(token)) return;
  pageTitle(ctx, "Event destinations");

  const head = h("div", { class: "page-head" },
    h("div", {},
      h("h1", {}, "Event destinations"),
      h("p", { class: "muted" }, "Where your events are delivered. Each destination receives the topics it subscribes to."),
    ),
    h("a", { href: "/new", class: "btn", "data-link": "" }, h("span", { "aria-hidden": "true" }, "+ "), "Add destination"),
  );

  if (!destinations.length) {
    replace(ctx.main, head, h("section", { class: "card empty" },
      h("h2", {}, "No destinations yet"),
      h("p", { class: "muted" }, "Add a destination to start receiving events."),
      h("a", { href: "/new", class: "btn", "data-link": "" }, "Add your first destination"),
    ));
    return;
  }

  // Drawn without waiting: the strips fill in when the one metrics request answers.
  const strips = new Map(destinations.map((d) => [d.id, h("td", { "data-label": "Last 24 h" }, h("span", { class: "muted" }, "…"))]));
  healthByDestination(ctx.api).then(
    (health) => { for (const [id, cell] of strips) cell.replaceChildren(healthStrip(health.get(id))); },
    () => { for (const cell of strips.values()) cell.replaceChildren(h("span", { class: "muted" }, "—")); },
  );
  const rows = destinations.map((d) => {
    const type = types.find((t) => t.type === d.type);
    return h("tr", { "data-destination": d.id },
      h("td", { "data-label": "Type" }, h("span", { class: "type-cell" }, typeIcon(type), typeLabel(types, d.type))),
      h("td", { "data-label": "Target", class: "cell-target" },
        h("a", { href: `/destinations/${encodeURIComponent(d.id)}`, "data-link": "", class: "row-link" }, d.target || d.id),
      ),
      h("td", { "data-label": "Topics" }, topicsList(d.topics)),
      strips.get(d.id),
      h("td", { "data-label": "Status" }, enabledBadge(d)),
    );
  });
  replace(ctx.main, head, h("section", { class: "card card--flush" },
    h("table", { class: "table table--stack" },
      h("caption", { class: "sr-only" }, `${destinations.length} destinations`),
      h("thead", {}, h("tr", {}, ["Type", "Target", "Topics", "Last 24 h", "Status"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows),
    ),
  ));
}
