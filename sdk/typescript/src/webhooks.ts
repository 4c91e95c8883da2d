// Checking a webhook delivery (SPEC §7): Vouch signs deliveries as Standard Webhooks specifies
// (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`); the
// `standardwebhooks` package checks them, the timestamp within five minutes included.

import { Webhook } from "standardwebhooks";
import { VouchError } from "./errors.js";
import type { VouchEvent } from "./types.js";

/** Request headers as Node (`IncomingHttpHeaders`), Express, or the Fetch API (`Headers`) hold them. */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const value = record[name] ?? Object.entries(record).find(([key]) => key.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The event of a webhook delivery, once its signature has been checked against the
 * subscription's `secret` (`whsec_…`). `payload` is the body exactly as received (the raw
 * bytes or text, not a re-serialized object). A delivery that does not verify (wrong secret,
 * changed body, missing headers, a timestamp more than five minutes away) is a
 * {@link VouchError} `invalid_webhook`: answer it with a 4xx and do not act on it. During a
 * secret rotation either secret verifies (Vouch signs with both).
 */
export function verifyWebhook(payload: string | Uint8Array, headers: HeadersLike, secret: string): VouchEvent {
  const names = ["webhook-id", "webhook-timestamp", "webhook-signature"] as const;
  const wanted: Record<string, string> = {};
  for (const name of names) {
    const value = header(headers, name);
    if (value === undefined) throw new VouchError("invalid_webhook", `the delivery has no \`${name}\` header`);
    wanted[name] = value;
  }
  let event: unknown;
  try {
    event = new Webhook(secret).verify(payload, wanted);
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new VouchError("invalid_webhook", `the delivery does not verify: ${message}`, { cause });
  }
  if (typeof event !== "object" || event === null || typeof (event as VouchEvent).type !== "string") {
    throw new VouchError("invalid_webhook", "the delivery's body is not a Vouch event");
  }
  return event as VouchEvent;
}
