// When a failed call is tried again, and how long it waits first (the same rules as the Rust
// client, `vouch-client`): only a call that is safe to repeat is retried (a GET, a decision, a
// commit, which the edge records once per idempotency key, a token request), on `429` and on
// `5xx` other than `501`, and when no answer came at all. The wait doubles from `baseDelayMs`
// with jitter, up to `maxDelayMs`; a `retry-after` the server sent is honoured: never retried
// sooner, and not at all when it asks for longer than `maxDelayMs`.

export interface RetryPolicy {
  /** Attempts in all, the first included (1: never retry). */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 4 attempts, waiting about 0.2 s, 0.4 s and 0.8 s between them; a `retry-after` of up to 30 s is waited out. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 30_000 });

/**
 * How long to wait (ms) before the attempt after `attempt` (from 1) failed, or `undefined` when
 * it is not to be retried. `retryAfterMs` is what the server asked for.
 */
export function retryDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number | undefined {
  if (attempt >= policy.maxAttempts) return undefined;
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.maxDelayMs ? retryAfterMs : undefined;
  const doubled = policy.baseDelayMs * 2 ** Math.min(attempt - 1, 20);
  const capped = Math.min(doubled, policy.maxDelayMs);
  // Between half the wait and all of it, so that many clients do not come back in step.
  return capped / 2 + Math.random() * (capped / 2);
}

/** Whether an answer with this status is worth asking again. */
export function retryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** A `retry-after` header (delay-seconds or an HTTP date, RFC 9110 §10.2.3) in milliseconds from `now`. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`), as senders must use.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
