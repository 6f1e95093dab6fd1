// The API's error shape ({detail, code}, RFC 6749's {error, error_description} at /auth/token)
// as one exception, with what the user needs to hear: a 429's wait, being offline.

export class ApiError extends Error {
  constructor(status, body = {}, headers = null) {
    const detail = body.detail || body.error_description || `Request failed (${status})`;
    super(typeof detail === "string" ? detail : "The request was not accepted.");
    this.status = status;
    this.code = body.code || body.error || (status === 0 ? "offline" : "error");
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    const retry = headers ? Number(headers.get("Retry-After")) : NaN;
    this.retryAfter = Number.isFinite(retry) && retry > 0 ? Math.ceil(retry) : null;
    this.etag = headers ? headers.get("ETag") : null;
  }

  /** A sentence for a person: what happened and what to do. */
  get userMessage() {
    if (this.status === 0) return "You appear to be offline. Check your connection and try again.";
    if (this.status === 429) {
      const wait = this.retryAfter ? ` Try again in ${this.retryAfter} s.` : " Try again shortly.";
      return `Too many requests.${wait}`;
    }
    if (this.status === 422 && this.errors.length) {
      return this.errors.map((e) => `${e.loc?.at(-1) ?? "field"}: ${e.msg}`).join("; ");
    }
    if (this.status >= 500) return "The server could not answer just now. Try again in a moment.";
    return this.message;
  }
}

export const offlineError = () => new ApiError(0, { code: "offline", detail: "offline" });
