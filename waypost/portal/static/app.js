// The portal's entry point: settings, branding, the tenant's session, the layout and the router.

import { createApi } from "./api.js";
import { h, replace } from "./dom.js";
import { adoptUrlParameters, currentSession, leave, storedTheme, storeTheme, watchExpiry } from "./session.js";
import { renderAttempt } from "./views/attempt.js";
import { renderDestination } from "./views/destination.js";
import { renderDestinations } from "./views/destinations.js";
import { renderCreate, renderEdit, renderTypePicker } from "./views/form.js";
import { renderMessage } from "./views/message.js";

const settings = JSON.parse(document.getElementById("portal-settings").textContent || "{}");
const flag = (name) => settings[name] === "true";

const ROUTES = [
  [/^\/$/, renderDestinations],
  [/^\/new$/, renderTypePicker],
  [/^\/new\/([^/]+)$/, renderCreate],
  [/^\/destinations\/([^/]+)$/, renderDestination],
  [/^\/destinations\/([^/]+)\/edit$/, renderEdit],
  [/^\/destinations\/([^/]+)\/attempts\/([^/]+)$/, renderAttempt],
];

/** Black or white, whichever reads better on `color` (WCAG relative luminance). */
function textColorOn(color) {
  const probe = document.createElement("span");
  probe.style.color = color;
  document.body.append(probe);
  const channels = getComputedStyle(probe).color.match(/[\d.]+/g) || ["0", "0", "0"];
  probe.remove();
  const [r, g, b] = channels.slice(0, 3).map((c) => {
    const v = Number(c) / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) ? "#000" : "#fff";
}

function applyBranding() {
  const color = settings.BRAND_COLOR;
  if (color && CSS.supports("color", color)) {
    document.documentElement.style.setProperty("--brand", color);
    document.documentElement.style.setProperty("--brand-text", textColorOn(color));
  }
}

function effectiveTheme() {
  if (settings.FORCE_THEME) return settings.FORCE_THEME;
  const chosen = storedTheme();
  if (chosen) return chosen;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function applyTheme() {
  const theme = effectiveTheme();
  document.documentElement.dataset.theme = theme;
  for (const logo of document.querySelectorAll("[data-logo]")) {
    const dark = settings.LOGO_DARK || settings.LOGO;
    logo.src = theme === "dark" ? dark : settings.LOGO || dark;
  }
  const toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.setAttribute("aria-pressed", String(theme === "dark"));
    toggle.title = theme === "dark" ? "Use the light theme" : "Use the dark theme";
  }
}

function header() {
  const name = settings.ORGANIZATION_NAME;
  const brand = settings.LOGO
    ? h("img", { class: "brand__logo", "data-logo": "", alt: name || "Home", src: settings.LOGO })
    : h("span", { class: "brand__name" }, name || "Event destinations");
  const toggle = settings.FORCE_THEME
    ? null
    : h(
        "button",
        {
          id: "theme-toggle",
          type: "button",
          class: "icon-button",
          "aria-label": "Dark theme",
          onclick: () => {
            storeTheme(effectiveTheme() === "dark" ? "light" : "dark");
            applyTheme();
          },
        },
        h("span", { class: "theme-glyph", "aria-hidden": "true" }),
      );
  return h(
    "header",
    { class: "topbar" },
    h("div", { class: "topbar__inner" },
      h("a", { href: "/", class: "brand", "data-link": "" }, brand),
      h("span", { class: "topbar__spacer" }),
      toggle,
    ),
  );
}

function footer() {
  if (flag("DISABLE_OUTPOST_BRANDING")) return null;
  return h("footer", { class: "footer" }, "Powered by ", h("span", { class: "footer__mark" }, "Outpost"));
}

function boot() {
  adoptUrlParameters();
  applyBranding();
  applyTheme();
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

  const main = document.getElementById("main");
  const app = document.getElementById("app");
  const session = currentSession();
  const expire = () => {
    if (!leave(settings)) {
      renderMessage(main, "Your session has ended", "Open the portal again from the application that sent you here.");
    }
  };
  if (!session) {
    expire();
    return;
  }
  watchExpiry(session, expire);
  const api = createApi(session, expire);

  const live = h("div", { class: "toast", role: "status", "aria-live": "polite" });
  app.prepend(header());
  const foot = footer();
  if (foot) app.append(foot);
  app.append(live);
  applyTheme();

  let renderCount = 0;
  const ctx = {
    api,
    settings,
    flag,
    main,
    navigate(path, { replaceState = false } = {}) {
      if (replaceState) history.replaceState(null, "", path);
      else history.pushState(null, "", path);
      route(true);
    },
    announce(text) {
      live.textContent = "";
      live.classList.remove("toast--shown");
      requestAnimationFrame(() => {
        live.textContent = text;
        live.classList.add("toast--shown");
      });
      clearTimeout(ctx.announceTimer);
      ctx.announceTimer = setTimeout(() => live.classList.remove("toast--shown"), 4000);
    },
    /** True while the view that asked is still the one on screen (stale async renders stop). */
    current(token) {
      return token === renderCount;
    },
  };

  async function route(moveFocus) {
    renderCount += 1;
    const token = renderCount;
    const path = window.location.pathname.replace(/\/+$/, "") || "/";
    const match = ROUTES.map(([pattern, view]) => [path.match(pattern), view]).find(([m]) => m);
    // Only a slow answer replaces the page with "Loading…": a quick refresh does not flicker.
    const loading = setTimeout(() => {
      if (ctx.current(token)) replace(main, h("p", { class: "loading", role: "status" }, "Loading…"));
    }, 300);
    try {
      if (!match) {
        renderMessage(main, "Page not found", "There is nothing at this address.", true);
      } else {
        const [found, view] = match;
        await view(ctx, token, ...found.slice(1).map(decodeURIComponent));
      }
    } catch (err) {
      if (!ctx.current(token) || err.status === 401) return;
      if (err.status === 404) renderMessage(main, "Not found", err.message || "There is nothing here.", true);
      else renderMessage(main, "Something went wrong", err.message || String(err), true);
    } finally {
      clearTimeout(loading);
    }
    if (moveFocus && ctx.current(token)) {
      const heading = main.querySelector("h1");
      (heading || main).setAttribute("tabindex", "-1");
      (heading || main).focus({ preventScroll: false });
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-link]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    ctx.navigate(link.getAttribute("href"));
  });
  window.addEventListener("popstate", () => route(true));

  // The tenant behind the token must still exist; a 401 here leaves via `expire`.
  api.getTenant().then(
    () => route(false),
    (err) => {
      if (err.status !== 401) renderMessage(main, "The portal could not start", err.message, false);
    },
  );
}

boot();
