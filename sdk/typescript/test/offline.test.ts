// Offline token checks (SPEC §16) with keys and status lists made here: the list is packed and
// compressed by this test's own few lines (not the SDK's decoder), and the decoder is also held
// to the examples of draft-ietf-oauth-status-list. A real token of the origin verifies offline
// against the edge's published keys.

import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { test } from "node:test";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { decodeStatusBytes, parseStatusList, statusAt, verifyTokenOffline, type Jwks } from "../src/index.js";

const LIST_URI = "https://edge.example/status/1";
const AGENT = "ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e";

/** Packs 2-bit statuses as the draft says: the first in the lowest bits of the first byte. */
function pack(statuses: number[]): Buffer {
  const bytes = Buffer.alloc(Math.ceil(statuses.length / 4));
  statuses.forEach((status, index) => {
    bytes[index >> 2] = (bytes[index >> 2] ?? 0) | (status << ((index % 4) * 2));
  });
  return bytes;
}

async function keys() {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  return { privateKey, jwks: { keys: [jwk] } as unknown as Jwks };
}

type Key = Awaited<ReturnType<typeof keys>>["privateKey"];

async function statusListToken(privateKey: Key, statuses: number[], iat: number, ttl: number, sub = LIST_URI, kid = "k1") {
  return new SignJWT({ ttl, status_list: { bits: 2, lst: deflateSync(pack(statuses)).toString("base64url") } })
    .setProtectedHeader({ alg: "ES256", kid, typ: "statuslist+jwt" })
    .setSubject(sub)
    .setIssuedAt(iat)
    .sign(privateKey);
}

async function accessToken(privateKey: Key, idx: number, claims: Record<string, unknown> = {}, now = Math.floor(Date.now() / 1000)) {
  return new SignJWT({ scope: "payments.refund", status: { status_list: { idx, uri: LIST_URI } }, ...claims })
    .setProtectedHeader({ alg: "ES256", kid: "k1", typ: "JWT" })
    .setIssuer("https://registry.example")
    .setSubject(AGENT)
    .setAudience("pt_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e")
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .sign(privateKey);
}

test("the decoder reads the draft's examples", () => {
  // draft-ietf-oauth-status-list, "Status List": 16 one-bit statuses, and 12 two-bit ones.
  const one = decodeStatusBytes("eNrbuRgAAhcBXQ");
  assert.deepEqual([...one], [0xb9, 0xa3]);
  assert.deepEqual(
    Array.from({ length: 16 }, (_, i) => statusAt(one, 1, i)),
    [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1],
  );
  const two = decodeStatusBytes("eNo76fITAAPfAgc");
  assert.deepEqual([...two], [0xc9, 0x44, 0xf9]);
  assert.deepEqual(
    Array.from({ length: 12 }, (_, i) => statusAt(two, 2, i)),
    [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3],
  );
  assert.equal(statusAt(two, 2, 12), undefined, "past the end");
  assert.equal(statusAt(one, 1, 16), undefined);
  assert.equal(statusAt(one, 1, -1), undefined);
});

test("a token is valid while its list says active, and refused as the list says otherwise", async () => {
  const { privateKey, jwks } = await keys();
  const now = Math.floor(Date.now() / 1000);
  const list = await statusListToken(privateKey, [0, 1, 2, 3, 0], now, 5);
  const options = { jwks, statusList: list, issuer: "https://registry.example", audience: "pt_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e" };

  const active = await verifyTokenOffline(await accessToken(privateKey, 4), options);
  assert.ok(active.valid, JSON.stringify(active));
  assert.equal(active.agentId, AGENT);
  assert.equal(active.statusChecked, true);

  for (const [idx, code] of [
    [1, "agent_revoked"],
    [2, "agent_suspended"],
    [3, "agent_not_active"],
  ] as const) {
    const refused = await verifyTokenOffline(await accessToken(privateKey, idx), options);
    assert.ok(!refused.valid);
    assert.equal(refused.code, code);
  }
  const beyond = await verifyTokenOffline(await accessToken(privateKey, 400), options);
  assert.ok(!beyond.valid && beyond.code === "status_list_invalid");

  // The same list, decoded once, as a parsed value.
  const { createLocalJWKSet } = await import("jose");
  const parsed = await parseStatusList(list, createLocalJWKSet(jwks as never));
  assert.equal(parsed.uri, LIST_URI);
  assert.ok((await verifyTokenOffline(await accessToken(privateKey, 0), { ...options, statusList: parsed })).valid);
});

test("a list older than its ttl refuses every token (fail closed)", async () => {
  const { privateKey, jwks } = await keys();
  const now = Math.floor(Date.now() / 1000);
  const token = await accessToken(privateKey, 0);
  const fresh = await statusListToken(privateKey, [0], now - 4, 5);
  assert.ok((await verifyTokenOffline(token, { jwks, statusList: fresh })).valid);
  const stale = await statusListToken(privateKey, [0], now - 6, 5);
  const refused = await verifyTokenOffline(token, { jwks, statusList: stale });
  assert.ok(!refused.valid && refused.code === "status_list_stale", JSON.stringify(refused));
  // Judged at the time of each check: the fresh list goes stale too.
  const later = await verifyTokenOffline(token, { jwks, statusList: fresh, now: new Date((now + 2) * 1000) });
  assert.ok(!later.valid && later.code === "status_list_stale");
});

test("lists and tokens that do not hold are refused", async () => {
  const { privateKey, jwks } = await keys();
  const other = await keys();
  const now = Math.floor(Date.now() / 1000);
  const list = await statusListToken(privateKey, [0], now, 5);
  const token = await accessToken(privateKey, 0);

  const elsewhere = await statusListToken(privateKey, [0], now, 5, "https://edge.example/status/2");
  assert.equal(((await verifyTokenOffline(token, { jwks, statusList: elsewhere })) as { code: string }).code, "status_list_mismatch");
  const forgedList = await statusListToken(other.privateKey, [0], now, 5);
  assert.equal(((await verifyTokenOffline(token, { jwks, statusList: forgedList })) as { code: string }).code, "status_list_invalid");
  const forgedToken = await accessToken(other.privateKey, 0);
  assert.equal(((await verifyTokenOffline(forgedToken, { jwks, statusList: list })) as { code: string }).code, "token_invalid");

  const expired = await accessToken(privateKey, 0, {}, now - 400);
  assert.equal(((await verifyTokenOffline(expired, { jwks, statusList: list })) as { code: string }).code, "token_expired");
  const inSkew = await accessToken(privateKey, 0, {}, now - 330);
  assert.ok((await verifyTokenOffline(inSkew, { jwks, statusList: list })).valid, "60 s of clock skew");

  const wrongAudience = await verifyTokenOffline(token, { jwks, statusList: list, audience: "pt_someone-else" });
  assert.equal((wrongAudience as { code: string }).code, "token_invalid");
  const wrongIssuer = await verifyTokenOffline(token, { jwks, statusList: list, issuer: "https://elsewhere.example" });
  assert.equal((wrongIssuer as { code: string }).code, "token_invalid");

  const delegated = await accessToken(privateKey, 0, { act: { sub: "ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2f" } });
  assert.equal(((await verifyTokenOffline(delegated, { jwks, statusList: list })) as { code: string }).code, "delegation_unchecked");
  assert.ok((await verifyTokenOffline(delegated, { jwks, statusList: list, allowDelegated: true })).valid);

  // Not ES256: an HS256 token made with the public key's bytes as the secret (the classic confusion).
  const hs = await new SignJWT({}).setProtectedHeader({ alg: "HS256", kid: "k1" }).setSubject(AGENT).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(JSON.stringify(jwks)));
  assert.equal(((await verifyTokenOffline(hs, { jwks })) as { code: string }).code, "token_invalid");
  assert.equal(((await verifyTokenOffline("x".repeat(9000), { jwks })) as { code: string }).code, "token_invalid");

  // A list verified with one JWK Set is not taken on trust with another.
  const [signing] = jwks.keys;
  const [standby] = other.jwks.keys;
  assert.ok(signing && standby);
  const both = { keys: [signing, { ...standby, kid: "k2" }] } as Jwks;
  const byStandby = await statusListToken(other.privateKey, [0], now, 5, LIST_URI, "k2");
  assert.ok((await verifyTokenOffline(token, { jwks: both, statusList: byStandby })).valid);
  const withoutStandby = { keys: [signing] } as Jwks;
  assert.equal(((await verifyTokenOffline(token, { jwks: withoutStandby, statusList: byStandby })) as { code: string }).code, "status_list_invalid");

  // Without a list, the status is not checked, and says so.
  const unchecked = await verifyTokenOffline(token, { jwks });
  assert.ok(unchecked.valid && unchecked.statusChecked === false);
});
