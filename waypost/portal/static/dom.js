// Building DOM nodes without HTML strings: every value from the API becomes a text node or a
// property, never markup, so nothing a tenant stores can inject script into the page.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function assign(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** h("button", {class: "btn", onclick}, "Save") → <button class="btn">Save</button> */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  assign(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements (the chart). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  assign(el, attrs);
  append(el, children);
  return el;
}

export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

let idCounter = 0;
/** A page-unique id, for label/aria wiring. */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Text readers can see but sighted users do not (e.g. a chart's numbers). */
export function srOnly(...children) {
  return h("span", { class: "sr-only" }, ...children);
}

/**
 * A destination type's icon: the server sends SVG markup. It is shown as a CSS mask over
 * `currentColor` (so it follows the theme) from a data: URL, which can never run script.
 */
export function typeIcon(type) {
  const el = h("span", { class: "type-icon", "aria-hidden": "true" });
  if (type && type.icon) {
    const url = `url("data:image/svg+xml,${encodeURIComponent(type.icon)}")`;
    el.style.setProperty("mask-image", url);
    el.style.setProperty("-webkit-mask-image", url);
  } else {
    el.classList.add("type-icon--blank");
  }
  return el;
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function time(iso) {
  return h("time", { datetime: iso || "" }, formatTime(iso));
}
