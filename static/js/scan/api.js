// The scanner API (/api/v1/, DESIGN.md §5), with the phone's device token. A refusal is an
// ApiError carrying the server's `code` and `detail` (already in the page's language); no answer
// at all, or a 5xx, means the outcome is unknown (ApiError.unknown).

import { CONFIG, LANGUAGE } from "./i18n.js";
import { load } from "./store.js";

const TIMEOUT_MS = 20000;

export class ApiError extends Error {
  constructor({ status = 0, code = "network", detail = "", body = null, retryAfter = null }) {
    super(`${code} ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
    this.retryAfter = retryAfter;
  }

  // The request may or may not have been recorded: send it again, with the same key, later.
  get unknown() {
    return this.status === 0 || this.status >= 500;
  }
}

export async function request(method, path, body) {
  const device = load("device");
  const headers = { Accept: "application/json", "Accept-Language": LANGUAGE };
  if (device && device.token) {
    headers.Authorization = `Bearer ${device.token}`;
  }
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  let response;
  try {
    response = await fetch(CONFIG.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", // the device token is the sign-in, never a page session
      cache: "no-store",
      signal: abort.signal,
    });
  } catch (error) {
    throw new ApiError({ detail: String(error && error.message) });
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) {
    return { status: response.status, data };
  }
  const retry = parseInt(response.headers.get("Retry-After") || "", 10);
  throw new ApiError({
    status: response.status,
    code: (data && data.code) || (response.status >= 500 ? "server_error" : "unknown"),
    detail: (data && data.detail) || "",
    body: data,
    retryAfter: Number.isFinite(retry) ? retry : null,
  });
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body || {});
