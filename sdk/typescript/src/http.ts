// One HTTP exchange with Vouch, retried by the rules of ./retry.ts.

import { errorFromAnswer, VouchError } from "./errors.js";
import { DEFAULT_RETRY, parseRetryAfter, retryableStatus, retryDelay, sleep, type RetryPolicy } from "./retry.js";

export const USER_AGENT = "vouch-sdk-typescript/0.1.0";

/** Settings every client takes. */
export interface TransportOptions {
  /** Retries on `429`, `5xx` and no answer (default: {@link DEFAULT_RETRY}). */
  retry?: Partial<RetryPolicy>;
  /** How long one attempt may take, in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path and query, from the base (`/verify?agent_id=…`). */
  path: string;
  headers?: Record<string, string>;
  /** JSON to send (as `application/json`). */
  json?: unknown;
  /** A form to send (as `application/x-www-form-urlencoded`). */
  form?: Record<string, string>;
  /** Whether the call may be sent again after a failure. */
  repeatable: boolean;
}

/** An answer, its body read. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

export class Transport {
  readonly base: string;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;

  constructor(base: string, options: TransportOptions = {}) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new VouchError("config", `${JSON.stringify(base)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new VouchError("config", `${base} is not an http(s) URL`);
    }
    this.base = url.href.replace(/\/+$/, "");
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  url(path: string): string {
    return this.base + path;
  }

  /** Sends `call`, retried while that is allowed; any status is an answer. */
  async send(call: Call): Promise<Answer> {
    const headers: Record<string, string> = { "user-agent": USER_AGENT, accept: "application/json", ...call.headers };
    let body: string | undefined;
    if (call.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.json);
    } else if (call.form !== undefined) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(call.form).toString();
    }
    const url = this.url(call.path);
    for (let attempt = 1; ; attempt++) {
      let answer: Answer;
      try {
        const response = await this.fetch(url, {
          method: call.method,
          headers,
          ...(body === undefined ? {} : { body }),
          redirect: "manual",
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        answer = { status: response.status, headers: response.headers, text: await response.text() };
      } catch (cause) {
        const wait = call.repeatable ? retryDelay(this.retry, attempt) : undefined;
        if (wait === undefined) {
          throw new VouchError("unreachable", `no answer from ${url}: ${reasonOf(cause)}`, { cause });
        }
        await sleep(wait);
        continue;
      }
      if (call.repeatable && retryableStatus(answer.status)) {
        const asked = parseRetryAfter(answer.headers.get("retry-after"));
        const wait = retryDelay(this.retry, attempt, asked);
        if (wait !== undefined) {
          await sleep(wait);
          continue;
        }
      }
      return answer;
    }
  }

  /** Sends `call` and reads a `2xx` answer's JSON; any other status is a {@link VouchError}. */
  async json<T>(call: Call): Promise<T> {
    const answer = await this.send(call);
    if (answer.status < 200 || answer.status > 299) throw failure(answer);
    return parseJson<T>(answer, call.path);
  }
}

export function failure(answer: Answer): VouchError {
  return errorFromAnswer(answer.status, answer.text, parseRetryAfter(answer.headers.get("retry-after")));
}

export function parseJson<T>(answer: Answer, what: string): T {
  try {
    return JSON.parse(answer.text) as T;
  } catch (cause) {
    throw new VouchError("protocol", `the answer to ${what} is not JSON`, { status: answer.status, body: answer.text, cause });
  }
}

export function reasonOf(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause;
    return inner instanceof Error ? `${cause.message} (${inner.message})` : cause.message;
  }
  return String(cause);
}
