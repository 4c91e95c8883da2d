// IETF OAuth Token Status List (draft-ietf-oauth-status-list), as Vouch publishes it (SPEC
// §16): a JWT of type `statuslist+jwt` signed by the registry's token key whose
// `status_list: { bits, lst }` packs one status per passport, `bits` bits each, the first
// status in the least significant bits of the first byte; `lst` is base64url (no padding) of
// the ZLIB (RFC 1950) compressed bytes. Vouch uses 2 bits: 0 active, 1 revoked, 2 suspended,
// 3 not active yet.

import { inflateSync } from "node:zlib";
import { jwtVerify, type JWTVerifyGetKey } from "jose";
import { VouchError } from "./errors.js";

/** The largest list this library inflates: room for 64 million 2-bit statuses. */
export const MAX_LIST_BYTES = 16 * 1024 * 1024;

export type StatusBits = 1 | 2 | 4 | 8;

/** What a status value means in Vouch's lists. */
export const STATUS_NAMES = ["active", "revoked", "suspended", "not_active"] as const;

/** A status list whose token has been verified: what {@link verifyTokenOffline} needs of it. */
export interface StatusList {
  /** The list's URI (its token's `sub`): tokens name it in `status.status_list.uri`. */
  uri: string;
  bits: StatusBits;
  /** The statuses, packed. */
  bytes: Uint8Array;
  /** When the registry signed the list (`iat`, seconds since the epoch). */
  issuedAt: number;
  /** How long a copy may be relied on after `iat` (`ttl`, seconds), if the list says. */
  ttl: number | undefined;
  /** `exp`, if the list has one (seconds since the epoch). */
  expiresAt: number | undefined;
}

/** The packed bytes of a list's `lst`. */
export function decodeStatusBytes(lst: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(lst)) throw new VouchError("status_list_invalid", "`lst` is not base64url");
  try {
    return new Uint8Array(inflateSync(Buffer.from(lst, "base64url"), { maxOutputLength: MAX_LIST_BYTES }));
  } catch (cause) {
    throw new VouchError("status_list_invalid", "`lst` is not a ZLIB stream of a list this library takes", { cause });
  }
}

/** The status at `index`, or `undefined` when the list is shorter. */
export function statusAt(bytes: Uint8Array, bits: StatusBits, index: number): number | undefined {
  if (!Number.isSafeInteger(index) || index < 0) return undefined;
  const bit = index * bits;
  const byte = bytes[Math.floor(bit / 8)];
  if (byte === undefined) return undefined;
  return (byte >> (bit % 8)) & ((1 << bits) - 1);
}

/**
 * Verifies a status list token (`statuslist+jwt`, ES256, by a key of `keys`) and decodes its
 * list. Its freshness is not judged here: {@link verifyTokenOffline} refuses a list older than
 * its `ttl` at the time of each check.
 */
export async function parseStatusList(token: string, keys: JWTVerifyGetKey): Promise<StatusList> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keys, { algorithms: ["ES256"], typ: "statuslist+jwt", requiredClaims: ["sub", "iat"] }));
  } catch (cause) {
    throw new VouchError("status_list_invalid", `the status list token does not verify: ${(cause as Error).message}`, { cause });
  }
  const list = payload.status_list as { bits?: unknown; lst?: unknown } | undefined;
  const bits = list?.bits;
  if (bits !== 1 && bits !== 2 && bits !== 4 && bits !== 8) throw new VouchError("status_list_invalid", "`status_list.bits` is not 1, 2, 4 or 8");
  if (typeof list?.lst !== "string") throw new VouchError("status_list_invalid", "`status_list.lst` is missing");
  const ttl = payload.ttl;
  if (ttl !== undefined && (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl < 0)) {
    throw new VouchError("status_list_invalid", "`ttl` is not a number of seconds");
  }
  return {
    uri: payload.sub as string,
    bits,
    bytes: decodeStatusBytes(list.lst),
    issuedAt: payload.iat as number,
    ttl,
    expiresAt: typeof payload.exp === "number" ? payload.exp : undefined,
  };
}
