// The only way the page talks to the server: /api/v1 with the tenant's JWT as a bearer token.

const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.data = data;
  }

  /** Validation details as a list of strings (`config.url is required`, ...). */
  get details() {
    if (Array.isArray(this.data)) return this.data.map(String);
    if (this.data && typeof this.data === "object") {
      return Object.entries(this.data).map(([key, value]) => `${key}: ${value}`);
    }
    return [];
  }
}

/**
 * Query strings the way Outpost's portal sends them: arrays as `key[]=a&key[]=b`.
 * `query` is an object; undefined, null and "" values are left out.
 */
export function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) {
      for (const item of value) params.append(`${key}[]`, item);
    } else if (value !== undefined && value !== null && value !== "") {
      params.append(key, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export function createApi(session, onUnauthorized) {
  async function request(method, path, { query, body } = {}) {
    const headers = { Authorization: `Bearer ${session.token}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(BASE + path + queryString(query), init);
    } catch {
      throw new ApiError(0, "The server could not be reached. Check your connection and try again.");
    }
    let payload = null;
    const text = await response.text();
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch {
        payload = null;
      }
    }
    if (response.status === 401) {
      onUnauthorized();
      throw new ApiError(401, "Your session has expired.");
    }
    if (!response.ok) {
      const message = payload && typeof payload.message === "string" ? payload.message : "";
      throw new ApiError(response.status, message, payload ? payload.data : undefined);
    }
    return payload;
  }

  const tenant = `/tenants/${encodeURIComponent(session.tenantId)}`;
  const destination = (id) => `${tenant}/destinations/${encodeURIComponent(id)}`;

  return {
    tenantId: session.tenantId,
    getTenant: () => request("GET", tenant),
    listDestinations: () => request("GET", `${tenant}/destinations`),
    getDestination: (id) => request("GET", destination(id)),
    createDestination: (body) => request("POST", `${tenant}/destinations`, { body }),
    updateDestination: (id, body) => request("PATCH", destination(id), { body }),
    deleteDestination: (id) => request("DELETE", destination(id)),
    enableDestination: (id) => request("PUT", `${destination(id)}/enable`),
    disableDestination: (id) => request("PUT", `${destination(id)}/disable`),
    listAttempts: (id, query) => request("GET", `${destination(id)}/attempts`, { query }),
    getAttempt: (id, attemptId, query) =>
      request("GET", `${destination(id)}/attempts/${encodeURIComponent(attemptId)}`, { query }),
    retry: (eventId, destinationId) =>
      request("POST", "/retry", { body: { event_id: eventId, destination_id: destinationId } }),
    destinationTypes: () => request("GET", "/destination-types"),
    topics: () => request("GET", "/topics"),
    attemptMetrics: (query) => request("GET", "/metrics/attempts", { query }),
    // This server's extensions (waypost/api/openapi.yaml), not Outpost operations.
    sendTestEvent: (id) => request("POST", `${destination(id)}/test`, { body: {} }),
    createRecovery: (body) => request("POST", `${tenant}/recoveries`, { body }),
    getRecovery: (id) => request("GET", `${tenant}/recoveries/${encodeURIComponent(id)}`),
    cancelRecovery: (id) => request("DELETE", `${tenant}/recoveries/${encodeURIComponent(id)}`),
  };
}
