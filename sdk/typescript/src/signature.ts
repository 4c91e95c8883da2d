// Checking a signed decision (SPEC §12) with nothing but the registry's public keys: the
// decision without its `signature`, in its RFC 8785 (JCS) form, signed with Ed25519 by the
// key its `kid` names in the edge's `GET /.well-known/oap/jwks.json`.

import { createPublicKey, verify, type KeyObject } from "node:crypto";
import canonicalize from "canonicalize";
import type { Jwks } from "./types.js";

const PREFIX = "ed25519:";
const imported = new WeakMap<Jwks, Map<string, KeyObject>>();

function keysOf(jwks: Jwks): Map<string, KeyObject> {
  let keys = imported.get(jwks);
  if (keys === undefined) {
    keys = new Map();
    for (const jwk of jwks.keys ?? []) {
      if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.kid !== "string" || typeof jwk.x !== "string") continue;
      if (jwk.alg !== undefined && jwk.alg !== "EdDSA" && jwk.alg !== "Ed25519") continue;
      try {
        keys.set(jwk.kid, createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x }, format: "jwk" }));
      } catch {
        // a key that does not import verifies nothing
      }
    }
    imported.set(jwks, keys);
  }
  return keys;
}

/** Whether `jwks` has the key a decision names. */
export function hasDecisionKey(jwks: Jwks, kid: string): boolean {
  return keysOf(jwks).has(kid);
}

/**
 * Whether `decision` (as received, parsed from JSON) carries a valid Ed25519 signature by the
 * key of `jwks` its `kid` names. `false` for anything else: no such key, no `ed25519:`
 * signature, a signature of the wrong length, or any member changed since it was signed.
 */
export function verifyDecision(decision: unknown, jwks: Jwks): boolean {
  if (typeof decision !== "object" || decision === null || Array.isArray(decision)) return false;
  const { signature, ...unsigned } = decision as Record<string, unknown>;
  const kid = unsigned.kid;
  if (typeof signature !== "string" || !signature.startsWith(PREFIX) || typeof kid !== "string") return false;
  const key = keysOf(jwks).get(kid);
  if (key === undefined) return false;
  const encoded = signature.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]{86}==$/.test(encoded)) return false;
  const bytes = canonicalize(unsigned);
  if (bytes === undefined) return false;
  return verify(null, Buffer.from(bytes, "utf8"), key, Buffer.from(encoded, "base64"));
}
