/*
 * aioshop API client: the one way storefront scripts talk to /api/v1. Defines `window.api`.
 *
 *   api.request(method, path, body?) -> Promise<parsed JSON | null (204)>
 *   api.get(path)  api.post/put/patch(path, body?)  api.delete(path)
 *   api.ApiError   thrown for any non-2xx answer: `.status`, `.problem` (the problem+json body)
 *
 * Contract with the server (web/cookies.py, web/api/auth.py):
 * - The tokens live in HttpOnly cookies, so requests carry no Authorization header
 *   (`credentials: "same-origin"`). Unsafe methods repeat the page's
 *   <meta name="csrf-token"> in the X-CSRF-Token header (without it: 403); a page shared by
 *   every visitor carries no token, and then the client asks GET /csrf-token for it once.
 * - The API never refreshes silently: an expired access token is a 401 whose problem type is
 *   /problems/invalid-token (other 401s, like a wrong current password, are answers). Then
 *   this client refreshes ONCE (POST /api/v1/auth/refresh rotates the cookies) while every
 *   other request that meets such a 401 waits for that same refresh; each is retried once.
 * - A refresh token spent twice ends the whole session, so tabs take turns under the Web Lock
 *   "aioshop-refresh". Inside it a tab first asks the server (GET /api/v1/me) whether the
 *   cookies work again: the cookie jar is shared and up to date when the lock changes hands,
 *   whereas localStorage and BroadcastChannel news from the other tab may still be in flight.
 * - When the refresh is refused (401) the user goes to /login?next=<this page>, and the
 *   waiting requests are rejected with that error.
 */
(() => {
  "use strict";

  const REFRESH = "/api/v1/auth/refresh";
  const PROBE = "/api/v1/me"; // the cheapest request that needs a valid access token
  const NEVER_REFRESH = new Set([REFRESH, "/api/v1/auth/login"]); // their 401 is the answer
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  const CSRF_TOKEN = "/csrf-token";

  let generation = 0; // how many times this tab has seen the cookies renewed
  let refreshing = null; // the renewal this tab's failed requests are waiting for

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.name = "ApiError";
      this.status = status;
      this.problem = problem;
    }
  }

  let askedToken = null; // the token asked of the server, for a page that carries none

  // The page's CSRF token; a page shared by every visitor (cached whole) carries none, so then
  // the server is asked once (GET /csrf-token, which also sets the cookie it is checked against).
  async function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    if (askedToken === null) {
      askedToken = fetch(CSRF_TOKEN, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then((response) => (response.ok ? response.json() : { csrf_token: "" }))
        .then((answer) => answer.csrf_token || "")
        .catch(() => "")
        .then((token) => {
          if (!token) askedToken = null; // asked again by the next request
          return token;
        });
    }
    return askedToken;
  }

  async function send(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE.has(method)) headers["X-CSRF-Token"] = await csrfToken();
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

  async function tokenRejected(response, path) {
    if (response.status !== 401 || NEVER_REFRESH.has(new URL(path, location.href).pathname)) {
      return false;
    }
    const problem = await response.clone().json().catch(() => null);
    return Boolean(problem) && problem.type === "/problems/invalid-token";
  }

  function withRefreshLock(task) {
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request("aioshop-refresh", task);
    }
    return task(); // no Web Locks: this tab's single renewal still never spends a token twice
  }

  // Runs under the lock: another tab may have refreshed while this one waited or failed.
  async function renew() {
    if (!(await send("GET", PROBE)).ok) {
      const response = await send("POST", REFRESH, {});
      if (!response.ok) {
        const error = await parse(response).catch((failure) => failure);
        if (response.status === 401) {
          location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        }
        throw error;
      }
    }
    generation += 1;
  }

  // Working cookies for a request sent at `seen`; every caller shares one renewal.
  function renewSince(seen) {
    if (generation > seen) return Promise.resolve(); // renewed after that request left
    if (!refreshing) {
      refreshing = withRefreshLock(renew).finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function request(method, path, body) {
    method = method.toUpperCase();
    const seen = generation;
    let response = await send(method, path, body);
    if (await tokenRejected(response, path)) {
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
