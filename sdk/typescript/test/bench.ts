// Offline verifications per second (SPEC §16, docs/benchmarks.md): verifyTokenOffline over one
// ES256 access token with a `status` claim, against a JWKS of two keys and a status list of
// 100,000 two-bit entries, both parsed once and kept, as a partner would keep them. Run it on one
// core: `taskset -c 0 node build/test/bench.js [seconds]` (WebCrypto would otherwise spread
// verifications over libuv's threads).

import { deflateSync } from "node:zlib";
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from "jose";
import { parseStatusList, verifyTokenOffline, type Jwks } from "../src/index.js";

const seconds = Number(process.argv[2] ?? 5);
const { publicKey, privateKey } = await generateKeyPair("ES256");
const other = await generateKeyPair("ES256");
const jwks = {
  keys: [
    { ...(await exportJWK(publicKey)), kid: "signing", alg: "ES256", use: "sig" },
    { ...(await exportJWK(other.publicKey)), kid: "standby", alg: "ES256", use: "sig" },
  ],
} as unknown as Jwks;
const now = Math.floor(Date.now() / 1000);
const uri = "https://edge.example/status/0";
const entries = 100_000;
const statusList = await parseStatusList(
  await new SignJWT({ ttl: 3600, status_list: { bits: 2, lst: deflateSync(Buffer.alloc(entries / 4)).toString("base64url") } })
    .setProtectedHeader({ alg: "ES256", kid: "signing", typ: "statuslist+jwt" })
    .setSubject(uri)
    .setIssuedAt(now)
    .sign(privateKey),
  createLocalJWKSet(jwks as never),
);
const token = await new SignJWT({ org: "org_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e", scope: "payments.refund data.export", ver: 7, status: { status_list: { idx: 4242, uri } } })
  .setProtectedHeader({ alg: "ES256", kid: "signing", typ: "JWT" })
  .setIssuer("https://registry.example")
  .setSubject("ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e")
  .setAudience("pt_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e")
  .setJti("0192f2a4-c3b8-7c1e-9d2b-4a6f8e0c1d2e")
  .setIssuedAt(now)
  .setNotBefore(now)
  .setExpirationTime(now + 3600)
  .sign(privateKey);
const options = { jwks, statusList, issuer: "https://registry.example", audience: "pt_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e" };

const check = await verifyTokenOffline(token, options);
if (!check.valid || !check.statusChecked) throw new Error(`the benchmark's token does not verify: ${JSON.stringify(check)}`);
// Warm up, then count what completes in the time given, 64 in flight at a time.
const run = async (ms: number) => {
  const end = performance.now() + ms;
  let done = 0;
  while (performance.now() < end) {
    const batch = await Promise.all(Array.from({ length: 64 }, () => verifyTokenOffline(token, options)));
    for (const result of batch) if (!result.valid) throw new Error("a verification failed");
    done += batch.length;
  }
  return done;
};
await run(1000);
const started = performance.now();
const done = await run(seconds * 1000);
const elapsed = (performance.now() - started) / 1000;
console.log(
  JSON.stringify({
    benchmark: "verifyTokenOffline",
    node: process.version,
    token_bytes: token.length,
    status_list_entries: entries,
    seconds: Number(elapsed.toFixed(2)),
    verifications: done,
    per_second: Math.round(done / elapsed),
    mean_us: Number(((elapsed * 1e6) / done).toFixed(1)),
  }),
);
