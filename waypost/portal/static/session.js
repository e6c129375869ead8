// The tenant's session: the JWT from the portal URL, kept for this tab only (sessionStorage),
// removed from the address bar, and given up as soon as it expires or the API refuses it.

const TOKEN_KEY = "outpost-portal:token";
const THEME_KEY = "outpost-portal:theme";
const MAX_TIMER_MS = 2 ** 31 - 1;

function base64UrlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The JWT's claims, unverified: the server verifies; the page only needs `sub` and `exp`. */
export function claimsOf(token) {
  try {
    const claims = JSON.parse(base64UrlDecode(token.split(".")[1] || ""));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** Moves `?token=` (and `?theme=`) from the URL into this tab's storage. */
export function adoptUrlParameters() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  const theme = url.searchParams.get("theme");
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  if (theme === "light" || theme === "dark") sessionStorage.setItem(THEME_KEY, theme);
  if (url.searchParams.has("token") || url.searchParams.has("theme")) {
    url.searchParams.delete("token");
    url.searchParams.delete("theme");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
}

export function storedTheme() {
  return sessionStorage.getItem(THEME_KEY) || "";
}

export function storeTheme(theme) {
  sessionStorage.setItem(THEME_KEY, theme);
}

/** {token, tenantId, expiresAt} for a stored, unexpired token; otherwise null. */
export function currentSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const claims = claimsOf(token);
  if (!claims || typeof claims.sub !== "string" || !claims.sub) return null;
  const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
  if (expiresAt <= Date.now()) return null;
  return { token, tenantId: claims.sub, expiresAt };
}

/** Calls `onExpiry` when the token's `exp` passes (long sessions re-arm the timer). */
export function watchExpiry(session, onExpiry) {
  const arm = () => {
    const left = session.expiresAt - Date.now();
    if (left <= 0) onExpiry();
    else if (Number.isFinite(left)) setTimeout(arm, Math.min(left, MAX_TIMER_MS));
  };
  arm();
}

/** Forgets the token and sends the user where the operator said (refresh, else referer URL). */
export function leave(settings) {
  sessionStorage.removeItem(TOKEN_KEY);
  const target = settings.REFRESH_URL || settings.REFERER_URL;
  if (target && /^(https?:\/\/|\/)/i.test(target)) {
    window.location.replace(target);
    return true;
  }
  return false;
}
