/*
 * aioshop API client: the one way storefront scripts talk to /api/v1. Defines `window.api`.
 *
 *   api.request(method, path, body?) -> Promise<parsed JSON | null (204)>
 *   api.get(path)  api.post/put/patch(path, body?)  api.delete(path)
 *   api.ApiError   thrown for any non-2xx answer: `.status`, `.problem` (the problem+json body)
 *
 * Contract with the server (see web/cookies.py):
 * - The tokens live in HttpOnly cookies, so requests carry no Authorization header
 *   (`credentials: "same-origin"`). Unsafe methods repeat the page's
 *   <meta name="csrf-token"> in the X-CSRF-Token header (without it: 403).
 * - The API never refreshes silently: an expired access token is a 401. Then this client
 *   refreshes ONCE (POST /api/v1/auth/refresh, which rotates the cookies) while every other
 *   request that meets a 401 waits for that same refresh; then each is retried once.
 * - A refresh token spent twice ends the whole session, so tabs take turns: the refresh runs
 *   under the Web Lock "aioshop-refresh", and a tab that got the lock after another tab
 *   refreshed (a generation counter in localStorage, also announced on the
 *   BroadcastChannel "aioshop-auth") retries without refreshing again. The cookie jar is
 *   shared, so even a missed announcement costs one extra rotation, never a reuse.
 * - When the refresh is refused (401) the user goes to /login?next=<this page>, and the
 *   waiting requests are rejected with that error.
 */
(() => {
  "use strict";

  const REFRESH = "/api/v1/auth/refresh";
  const NEVER_REFRESH = new Set([REFRESH, "/api/v1/auth/login"]); // their 401 is the answer
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  const GENERATION_KEY = "aioshop-refresh-generation";
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("aioshop-auth") : null;

  let known = 0; // the highest refresh generation this tab has heard of (any tab's)
  let refreshing = null; // the one refresh this tab's requests wait for

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.name = "ApiError";
      this.status = status;
      this.problem = problem;
    }
  }

  function generation() {
    try {
      known = Math.max(known, Number(localStorage.getItem(GENERATION_KEY)) || 0);
    } catch {
      // storage disabled: this tab's own count (and the channel) still work
    }
    return known;
  }

  function announceRefresh() {
    known = generation() + 1;
    try {
      localStorage.setItem(GENERATION_KEY, String(known));
    } catch {}
    if (channel) channel.postMessage({ generation: known });
  }

  if (channel) {
    channel.onmessage = (event) => {
      known = Math.max(known, Number(event.data && event.data.generation) || 0);
    };
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function send(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
    return fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function parse(response) {
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    const text = await response.text();
    const data = text && /[/+]json\b/.test(type) ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new ApiError(response.status, data || { status: response.status, title: text });
    }
    return data;
  }

  function withRefreshLock(task) {
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request("aioshop-refresh", task);
    }
    return task(); // no Web Locks: one tab's queue still prevents double spending here
  }

  async function refresh() {
    const response = await send("POST", REFRESH, {});
    if (response.ok) return announceRefresh();
    const error = await parse(response).catch((failure) => failure);
    if (response.status === 401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw error;
  }

  // Fresh cookies for a request that started at generation `seen`: shared by every caller.
  function renewSince(seen) {
    if (generation() > seen) return Promise.resolve(); // refreshed since it was sent
    if (!refreshing) {
      refreshing = withRefreshLock(() => (generation() > seen ? undefined : refresh())).finally(
        () => {
          refreshing = null;
        },
      );
    }
    return refreshing;
  }

  async function request(method, path, body) {
    method = method.toUpperCase();
    const seen = generation();
    let response = await send(method, path, body);
    if (response.status === 401 && !NEVER_REFRESH.has(new URL(path, location.href).pathname)) {
      await renewSince(seen);
      response = await send(method, path, body);
    }
    return parse(response);
  }

  window.api = Object.freeze({
    ApiError,
    request,
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
    put: (path, body) => request("PUT", path, body),
    patch: (path, body) => request("PATCH", path, body),
    delete: (path) => request("DELETE", path),
  });
})();
