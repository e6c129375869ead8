// Creating and editing destinations: a form generated from the type's schema
// (`GET /destination-types`: config_fields, credential_fields) plus topics and, when the operator
// allows it, the filter and webhook custom headers.

import { ApiError } from "../api.js";
import { h, replace, typeIcon, uid } from "../dom.js";
import { backLink, errorBox, pageTitle } from "./common.js";

/** `/new`: choose a destination type. */
export async function renderTypePicker(ctx, token) {
  const types = await ctx.api.destinationTypes();
  if (!ctx.current(token)) return;
  pageTitle(ctx, "Add a destination");
  replace(ctx.main,
    backLink("/", "All destinations"),
    h("h1", {}, "Add a destination"),
    h("p", { class: "muted" }, "Choose where events should be sent."),
    // A type whose optional dependencies the server lacks (`available: false`) cannot be created.
    h("ul", { class: "type-grid", role: "list" }, types.filter((t) => t.available !== false).map((t) =>
      h("li", {},
        h("a", { href: `/new/${encodeURIComponent(t.type)}`, class: "type-card", "data-link": "" },
          typeIcon(t),
          h("span", { class: "type-card__label" }, t.label),
          h("span", { class: "type-card__text" }, t.description),
        ),
      ),
    )),
  );
}

/** `/new/:type`: the creation form. */
export async function renderCreate(ctx, token, typeName) {
  const [types, topics] = await Promise.all([ctx.api.destinationTypes(), ctx.api.topics()]);
  if (!ctx.current(token)) return;
  const type = types.find((t) => t.type === typeName);
  if (!type) throw new ApiError(404, `There is no destination type “${typeName}”.`);
  pageTitle(ctx, `New ${type.label} destination`);
  const form = destinationForm(ctx, type, topics, null, "Create destination", async (body) => {
    const created = await ctx.api.createDestination({ type: type.type, ...body });
    ctx.navigate(`/destinations/${encodeURIComponent(created.id)}`);
    ctx.announce("Destination created");
  });
  replace(ctx.main,
    backLink("/new", "Choose another type"),
    h("div", { class: "title-row" }, typeIcon(type), h("h1", {}, `New ${type.label} destination`)),
    h("p", { class: "muted" }, type.description),
    form,
  );
}

/** `/destinations/:id/edit`. */
export async function renderEdit(ctx, token, id) {
  const [destination, types, topics] = await Promise.all([
    ctx.api.getDestination(id),
    ctx.api.destinationTypes(),
    ctx.api.topics(),
  ]);
  if (!ctx.current(token)) return;
  const type = types.find((t) => t.type === destination.type) || {
    type: destination.type, label: destination.type, config_fields: [], credential_fields: [],
  };
  const back = `/destinations/${encodeURIComponent(id)}`;
  pageTitle(ctx, "Edit destination");
  const form = destinationForm(ctx, type, topics, destination, "Save changes", async (body) => {
    await ctx.api.updateDestination(id, body);
    ctx.navigate(back);
    ctx.announce("Changes saved");
  });
  replace(ctx.main,
    backLink(back, "Back to the destination"),
    h("div", { class: "title-row" }, typeIcon(type), h("h1", {}, "Edit destination")),
    h("p", { class: "muted" }, destination.target || destination.id),
    form,
  );
}

function fieldShown(ctx, type, field) {
  if (field.type === "key_value_map" && field.key === "custom_headers" && type.type === "webhook") {
    return ctx.flag("ENABLE_WEBHOOK_CUSTOM_HEADERS");
  }
  return true;
}

/** One labelled control with its hint and a slot for the server's error about it. */
function fieldRow(path, label, control, description, required) {
  const hintId = description ? uid("hint") : null;
  const errorId = uid("error");
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", describedBy);
  const mark = required ? h("span", { class: "field__req", "aria-hidden": "true" }, " *") : null;
  let caption;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(control.tagName)) {
    caption = h("label", { for: control.id, class: "field__label" }, label, mark);
  } else {
    // A group of controls (key/value rows) is named by its caption instead.
    caption = h("span", { id: uid("caption"), class: "field__label" }, label, mark);
    control.setAttribute("aria-labelledby", caption.id);
  }
  const row = h("div", { class: "field", "data-path": path },
    caption,
    description ? h("p", { id: hintId, class: "field__hint" }, description) : null,
    control,
    h("p", { id: errorId, class: "field__error" }),
  );
  return row;
}

function keyValueEditor(field, initial, label) {
  const noun = field.key === "custom_headers" ? "header" : "entry";
  const list = h("div", { class: "kv__rows" });
  let count = 0;
  const addRow = (key = "", value = "") => {
    count += 1;
    const n = count;
    const row = h("div", { class: "kv__row" },
      h("input", { type: "text", class: "input", value: key, placeholder: "Name", "aria-label": `${noun} ${n} name`, "data-kv": "key", autocomplete: "off", spellcheck: "false" }),
      h("input", { type: "text", class: "input", value, placeholder: "Value", "aria-label": `${noun} ${n} value`, "data-kv": "value", autocomplete: "off", spellcheck: "false" }),
      h("button", { type: "button", class: "btn btn--ghost btn--small", "aria-label": `Remove ${noun} ${n}`, onclick: () => row.remove() }, "Remove"),
    );
    list.append(row);
    return row;
  };
  for (const [key, value] of Object.entries(initial)) addRow(key, value);
  const id = uid("kv");
  const wrapper = h("div", { class: "kv", id, role: "group", tabindex: "-1" },
    list,
    h("button", { type: "button", class: "btn btn--ghost btn--small", onclick: () => addRow().querySelector("input").focus() }, `Add ${noun === "header" ? "a header" : "an entry"}`),
  );
  wrapper.collect = () => {
    const map = {};
    for (const row of list.querySelectorAll(".kv__row")) {
      const key = row.querySelector('[data-kv="key"]').value.trim();
      if (key) map[key] = row.querySelector('[data-kv="value"]').value;
    }
    return map;
  };
  return wrapper;
}

function parseMap(text) {
  try {
    const value = JSON.parse(text || "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/** A control for one schema field; `control.read()` gives its string value ("" = none). */
function schemaControl(field, current, isCredential, editing) {
  const id = uid(`f-${field.key}`);
  let control;
  if (field.type === "checkbox") {
    const checked = current !== undefined ? ["true", "on", "1"].includes(String(current).toLowerCase()) : field.default === "true" || field.default === true;
    control = h("input", { type: "checkbox", id, class: "checkbox", checked });
    control.read = () => (control.checked ? "true" : "false");
  } else if (field.type === "select") {
    control = h("select", { id, class: "input", required: field.required },
      field.required ? null : h("option", { value: "" }, "—"),
      (field.options || []).map((o) => h("option", { value: o.value, selected: (current ?? field.default) === o.value }, o.label)),
    );
    control.read = () => control.value;
  } else if (field.type === "key_value_map") {
    control = keyValueEditor(field, parseMap(current), field.label || field.key);
    control.id = id;
    control.read = () => {
      const map = control.collect();
      return Object.keys(map).length ? JSON.stringify(map) : "";
    };
  } else {
    const secretKept = isCredential && editing && field.sensitive;
    control = h("input", {
      type: field.sensitive ? "password" : "text",
      id,
      class: "input",
      value: secretKept ? "" : current ?? field.default ?? "",
      required: field.required && !secretKept,
      minlength: field.minlength,
      maxlength: field.maxlength,
      placeholder: secretKept ? "Unchanged" : null,
      autocomplete: "off",
      spellcheck: "false",
    });
    control.read = () => control.value.trim();
  }
  return control;
}

function topicsControl(topics, current) {
  const selected = new Set(current || []);
  const all = !current || selected.has("*");
  if (!topics.length) {
    const id = uid("topics");
    const input = h("input", {
      type: "text", id, class: "input", required: true, autocomplete: "off",
      value: current ? current.join(", ") : "*",
    });
    const row = fieldRow("topics", "Topics", input, "Comma-separated topic names, or * for every topic.", true);
    row.read = () => input.value.split(",").map((t) => t.trim()).filter(Boolean);
    return row;
  }
  const allBox = h("input", { type: "checkbox", id: uid("topic-all"), class: "checkbox", checked: all });
  const boxes = topics.map((t) => h("input", { type: "checkbox", id: uid("topic"), class: "checkbox", value: t, checked: !all && selected.has(t) }));
  const sync = () => {
    for (const b of boxes) b.disabled = allBox.checked;
  };
  allBox.addEventListener("change", sync);
  sync();
  const errorId = uid("error");
  const fieldset = h("fieldset", { class: "field fieldset", "data-path": "topics", "aria-describedby": errorId },
    h("legend", { class: "field__label" }, "Topics", h("span", { class: "field__req", "aria-hidden": "true" }, " *")),
    h("p", { class: "field__hint" }, "The events this destination receives."),
    h("div", { class: "check-list" },
      h("label", { class: "check", for: allBox.id }, allBox, h("span", {}, "All topics")),
      boxes.map((b) => h("label", { class: "check", for: b.id }, b, h("span", {}, b.value))),
    ),
    h("p", { id: errorId, class: "field__error" }),
  );
  fieldset.read = () => (allBox.checked ? ["*"] : boxes.filter((b) => b.checked).map((b) => b.value));
  return fieldset;
}

function showFieldErrors(form, err) {
  for (const row of form.querySelectorAll(".field")) {
    row.classList.remove("field--invalid");
    row.querySelector(".field__error").textContent = "";
    row.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
  }
  const messages = [...err.details];
  if (/topics/.test(err.message)) messages.push(`topics: ${err.message}`);
  let first = null;
  for (const message of messages) {
    const path = message.split(/[\s:]/)[0];
    const row = [...form.querySelectorAll(".field")].find((r) => path === r.dataset.path || path.startsWith(`${r.dataset.path}.`));
    if (!row) continue;
    row.classList.add("field--invalid");
    row.querySelector(".field__error").textContent = message;
    row.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
    first = first || row;
  }
  return first;
}

function destinationForm(ctx, type, topics, existing, submitLabel, save) {
  const editing = existing !== null;
  const config = existing ? existing.config || {} : {};
  const credentials = existing ? existing.credentials || {} : {};
  const topicsField = topicsControl(topics, existing ? existing.topics : null);

  const controls = [];
  const section = (fields, values, prefix) =>
    fields.filter((f) => fieldShown(ctx, type, f)).map((f) => {
      const control = schemaControl(f, values[f.key], prefix === "credentials", editing);
      controls.push({ prefix, field: f, control, before: values[f.key] });
      if (f.type === "checkbox") {
        const errorId = uid("error");
        control.setAttribute("aria-describedby", errorId);
        return h("div", { class: "field", "data-path": `${prefix}.${f.key}` },
          h("label", { class: "check", for: control.id }, control, h("span", {}, f.label || f.key)),
          f.description ? h("p", { class: "field__hint" }, f.description) : null,
          h("p", { id: errorId, class: "field__error" }),
        );
      }
      return fieldRow(`${prefix}.${f.key}`, f.label || f.key, control, f.description, f.required);
    });

  let filterInput = null;
  let filterRow = null;
  if (ctx.flag("ENABLE_DESTINATION_FILTER")) {
    filterInput = h("textarea", {
      id: uid("filter"), class: "input input--code", rows: "4", spellcheck: "false",
      value: existing && existing.filter ? JSON.stringify(existing.filter, null, 2) : "",
      placeholder: '{"data": {"status": "active"}}',
    });
    filterRow = fieldRow("filter", "Filter", filterInput, "Optional. Only events whose JSON matches this pattern are delivered. Leave empty to deliver every event of the chosen topics.", false);
  }

  const errorSlot = h("div", { class: "form-errors" });
  const submit = h("button", { type: "submit", class: "btn" }, submitLabel);
  const credentialRows = section(type.credential_fields || [], credentials, "credentials");
  const form = h("form", { class: "card form", "aria-label": submitLabel },
    errorSlot,
    h("h2", { class: "form__section" }, "Events"),
    topicsField,
    filterRow,
    h("h2", { class: "form__section" }, "Settings"),
    section(type.config_fields || [], config, "config"),
    credentialRows.length ? [h("h2", { class: "form__section" }, "Credentials"), credentialRows] : null,
    h("div", { class: "actions" }, submit),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorSlot.replaceChildren();
    const body = { topics: topicsField.read() };
    const newConfig = {};
    const newCredentials = {};
    for (const { prefix, field, control, before } of controls) {
      const value = control.read();
      const target = prefix === "config" ? newConfig : newCredentials;
      if (editing) {
        if (prefix === "credentials" && field.sensitive && value === "") continue; // kept
        if (value === "" && before !== undefined) target[field.key] = null; // cleared
        else if (value !== "" && value !== before) target[field.key] = value;
      } else if (value !== "") {
        target[field.key] = value;
      }
    }
    if (Object.keys(newConfig).length || !editing) body.config = newConfig;
    if (Object.keys(newCredentials).length) body.credentials = newCredentials;
    if (filterInput) {
      const text = filterInput.value.trim();
      if (text) {
        try {
          body.filter = JSON.parse(text);
        } catch {
          const err = new ApiError(422, "The filter is not valid JSON.", ["filter: not valid JSON"]);
          errorSlot.replaceChildren(errorBox(err));
          showFieldErrors(form, err);
          filterInput.focus();
          return;
        }
      } else if (editing && existing.filter) {
        body.filter = null;
      }
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      await save(body);
    } catch (err) {
      if (err.status === 401) return;
      errorSlot.replaceChildren(errorBox(err));
      const first = showFieldErrors(form, err);
      (first?.querySelector("input, select, textarea") || errorSlot.firstChild)?.focus?.();
      errorSlot.scrollIntoView({ block: "nearest" });
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  });
  return form;
}
