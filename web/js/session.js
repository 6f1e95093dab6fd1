// The login: the refresh token lives only in the HttpOnly cookie (cookie mode, Path=/auth),
// the access token only in this module's memory. Every tab refreshes on load; tabs racing
// on one cookie are answered alike within the server's grace window (docs/sessions.md).

import { ApiError, offlineError } from "./errors.js";

let accessToken = null;
let expiresAt = 0;
let inFlight = null;
const listeners = new Set();
const channel = "BroadcastChannel" in window ? new BroadcastChannel("taskgate-session") : null;

/** `fn(reason)` runs when the login ends: "logout" (here or in another tab) or "expired". */
export function onSessionEnd(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// Not a secret: only whether this browser holds a login cookie worth refreshing, so that a
// visitor who never logged in is not sent a refresh that can only fail.
const HINT = "taskgate.loggedIn";
export const mayHaveLogin = () => localStorage.getItem(HINT) === "1";

function ended(reason) {
  localStorage.removeItem(HINT);
  accessToken = null;
  expiresAt = 0;
  for (const fn of listeners) fn(reason);
}

channel?.addEventListener("message", (event) => {
  if (event.data === "logout") ended("logout");
});

async function postAuth(path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
  } catch {
    throw offlineError();
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data ?? {}, response.headers);
  return data;
}

function keep(pair) {
  localStorage.setItem(HINT, "1");
  accessToken = pair.access_token;
  // Refresh a little before the token expires, so no request meets the 401 first.
  expiresAt = Date.now() + Math.max(10, pair.expires_in - 30) * 1000;
}

export const isSignedIn = () => accessToken !== null;

/** A fresh access token from the cookie; one request at a time per tab. */
export function refresh() {
  inFlight ??= refreshWaitingOutLimits()
    .then((pair) => {
      keep(pair);
      return accessToken;
    })
    .catch((error) => {
      if (error.status === 401 || error.status === 403) ended(accessToken ? "expired" : "none");
      throw error;
    })
    .finally(() => {
      inFlight = null;
    });
  return inFlight;
}

/** A 429 (too many refreshes from this address) is waited out, up to twice, and said. */
async function refreshWaitingOutLimits() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await postAuth("/auth/refresh?cookie=true", {});
    } catch (error) {
      if (error.status !== 429 || attempt >= 2 || (error.retryAfter ?? 61) > 60) throw error;
      for (const fn of limitListeners) fn(error);
      await new Promise((resolve) => setTimeout(resolve, error.retryAfter * 1000));
    }
  }
}

const limitListeners = new Set();
/** `fn(error)` runs when a refresh waits for a rate limit (error.retryAfter seconds). */
export const onRateLimited = (fn) => limitListeners.add(fn);

/** The access token, refreshed first when it is (nearly) expired. */
export async function token() {
  if (accessToken && Date.now() < expiresAt) return accessToken;
  return refresh();
}

export async function login(identifier, password) {
  keep(await postAuth("/auth/login?cookie=true", { username: identifier, password }));
}

export async function register(email, username, password) {
  return postAuth("/auth/register", { email, username, password });
}

export async function logout() {
  try {
    await postAuth("/auth/logout", {});
  } finally {
    channel?.postMessage("logout");
    ended("logout");
  }
}

export async function logoutEverywhere() {
  await postAuth("/auth/logout-all", {}, await token());
  channel?.postMessage("logout");
  ended("logout");
}

/** Called when the API refuses the token as revoked: try the cookie once, else end. */
export async function revoked() {
  accessToken = null;
  return refresh();
}

export { postAuth };
