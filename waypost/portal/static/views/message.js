import { h, replace } from "../dom.js";

/** A full-page notice: not found, an error, or a session that has ended. */
export function renderMessage(main, title, text, withHomeLink) {
  document.title = title;
  replace(
    main,
    h("section", { class: "notice" },
      h("h1", { class: "notice__title" }, title),
      h("p", { class: "notice__text" }, text ? text[0].toUpperCase() + text.slice(1) : ""),
      withHomeLink ? h("a", { href: "/", class: "btn", "data-link": "" }, "Back to destinations") : null,
    ),
  );
}
