// Calls to the API through the gateway (same origin): the Bearer token from the session,
// one refresh and retry when the token has expired, errors as ApiError.

import { ApiError, offlineError } from "./errors.js";
import { revoked, token } from "./session.js";

const RETRYABLE_AUTH = new Set(["token_expired", "invalid_token", "token_revoked"]);

/** `{data, etag, status}`; `ifMatch` sends the version the edit was based on. */
export async function api(path, { method = "GET", body, ifMatch, retried = false } = {}) {
  const headers = { Authorization: `Bearer ${await token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw offlineError();
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401 && !retried && RETRYABLE_AUTH.has(data?.code)) {
    await revoked(); // throws, and ends the session, when the cookie is no good either
    return api(path, { method, body, ifMatch, retried: true });
  }
  if (!response.ok) throw new ApiError(response.status, data ?? {}, response.headers);
  return { data, etag: response.headers.get("ETag"), status: response.status };
}

export const etagOf = (version) => `"${version}"`;
