// The local edge: the built worker (edge-worker/build) served by the real Workers runtime
// (workerd, through Miniflare) with a KV namespace bound as VOUCH_KV, and beside it a small HTTP
// endpoint shaped like the Cloudflare KV REST API that writes into that same namespace. The
// origin's KV publisher points at it, so the production code path runs locally with only the
// base URL changed.
//
// Environment: VOUCH_EDGE_PORT (8787), VOUCH_KV_API_PORT (8788), VOUCH_KV_API_TOKEN (required),
// VOUCH_KV_ACCOUNT_ID ("local"), VOUCH_KV_NAMESPACE_ID ("vouch-local"), VOUCH_EDGE_PERSIST (a
// directory to keep KV and the Durable Objects in; default: memory only), VOUCH_EDGE_SCRIPT
// (edge-worker/build/index.js), VOUCH_EDGE_SECRET (the secret of POST /internal/journal; without
// it the origin cannot append to the status journal), VOUCH_JOURNAL_REFRESH_MS,
// VOUCH_JOURNAL_BOUND_MS and VOUCH_JOURNAL_SHARE_SECONDS (the worker's variables of the same
// names), VOUCH_EDGE_TEST_CONTROLS=1 (binds VOUCH_TEST_CONTROLS: POST
// /internal/test/journal-outage, for tests only), VOUCH_DECISION_KEY and
// VOUCH_DECISION_KEY_PREVIOUS (the Ed25519 private JWKs decisions are signed with, SPEC §12;
// without the first, a key is made up for this run and its kid printed).
// For tests, POST /__control/faults on the KV API port queues failures:
//   {"status": 500 | 429, "count": 3, "retry_after": 1}  or  {"delay_ms": 200, "count": 5}
// GET /__control/stats reports the writes it accepted, and GET /__control/kv/<key> reads a key
// whatever faults are queued.
// The rate limits are wrangler.toml's [[ratelimits]] blocks, every one of them: per address
// (VOUCH_RATE_LIMIT_ADDRESS), overridden by VOUCH_EDGE_RATE_LIMIT (requests per period, 0:
// unbound, i.e. off) and VOUCH_EDGE_RATE_PERIOD (10 or 60); per partner
// (VOUCH_RATE_LIMIT_PARTNER), overridden by VOUCH_EDGE_PARTNER_RATE_LIMIT and
// VOUCH_EDGE_PARTNER_RATE_PERIOD (any other block: VOUCH_EDGE_<suffix>_RATE_LIMIT/_PERIOD).
// For benchmarks, VOUCH_EDGE_CONSTANT=1 adds, in the same workerd, a worker that answers every
// request with a constant JSON body; requests with `Host: constant.bench` reach it.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const env = process.env;
const edgePort = Number(env.VOUCH_EDGE_PORT ?? 8787);
const kvPort = Number(env.VOUCH_KV_API_PORT ?? 8788);
const token = env.VOUCH_KV_API_TOKEN;
const account = env.VOUCH_KV_ACCOUNT_ID ?? "local";
const namespace = env.VOUCH_KV_NAMESPACE_ID ?? "vouch-local";
const script = path.resolve(env.VOUCH_EDGE_SCRIPT ?? path.join(repo, "edge-worker/build/index.js"));
if (!token) {
  console.error("VOUCH_KV_API_TOKEN must be set");
  process.exit(2);
}

// The deployed limits (every [[ratelimits]] block of wrangler.toml), unless overridden. Each
// block is read on its own (up to the next `[`), so a second block never hides the first.
const toml = fs.readFileSync(path.join(repo, "wrangler.toml"), "utf8");
const blocks = toml.split(/^(?=\[)/m).filter((b) => b.startsWith("[[ratelimits]]"));
const rateLimits = blocks.map((block) => {
  const name = block.match(/^name = "(\w+)"/m)?.[1];
  const namespace = block.match(/^namespace_id = "(\d+)"/m)?.[1];
  const simple = block.match(/^simple = \{ limit = (\d+), period = (\d+) \}/m);
  if (!name || !namespace || !simple) {
    console.error(`wrangler.toml has a [[ratelimits]] block this script cannot read:\n${block}`);
    process.exit(2);
  }
  // VOUCH_RATE_LIMIT_ADDRESS → VOUCH_EDGE_RATE_LIMIT; VOUCH_RATE_LIMIT_PARTNER → VOUCH_EDGE_PARTNER_RATE_LIMIT.
  const suffix = name.replace(/^VOUCH_RATE_LIMIT_/, "");
  const override = suffix === "ADDRESS" ? "VOUCH_EDGE_RATE" : `VOUCH_EDGE_${suffix}_RATE`;
  // The worker's variable for the block's period (its `retry-after`).
  const periodVar = suffix === "ADDRESS" ? "VOUCH_RATE_LIMIT_PERIOD_SECONDS" : `${name}_PERIOD_SECONDS`;
  return {
    name,
    namespace,
    limit: Number(env[`${override}_LIMIT`] ?? simple[1]),
    period: Number(env[`${override}_PERIOD`] ?? simple[2]),
    periodVar,
  };
});
if (!rateLimits.some((r) => r.name === "VOUCH_RATE_LIMIT_ADDRESS")) {
  console.error("wrangler.toml has no [[ratelimits]] block for VOUCH_RATE_LIMIT_ADDRESS");
  process.exit(2);
}

// The decision key (a Worker secret when deployed): the caller's, or one for this run only.
const decisionKey = env.VOUCH_DECISION_KEY || (() => {
  const jwk = crypto.generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  console.error("no VOUCH_DECISION_KEY: decisions are signed with a key made up for this run");
  return JSON.stringify(jwk);
})();
const vouchWorker = {
  name: "vouch-edge",
  modules: true,
  scriptPath: script,
  modulesRoot: path.dirname(script),
  modulesRules: [
    { type: "ESModule", include: ["**/*.js"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: "2026-05-01",
  kvNamespaces: { VOUCH_KV: namespace },
  ratelimits: Object.fromEntries(
    rateLimits
      .filter((r) => r.limit > 0)
      .map((r) => [r.name, { namespace_id: r.namespace, simple: { limit: r.limit, period: r.period } }]),
  ),
  // The same Durable Objects as wrangler.toml, SQLite-backed, in the same workerd
  // (VOUCH_EDGE_OBJECTS=0 leaves them out, to serve an older build in benchmarks).
  durableObjects: env.VOUCH_EDGE_OBJECTS === "0" ? {} : {
    VOUCH_JOURNAL: { className: "StatusJournal", useSQLite: true },
    VOUCH_CAPS: { className: "DailyCaps", useSQLite: true },
    VOUCH_RECEIPTS: { className: "Receipts", useSQLite: true },
  },
  bindings: Object.fromEntries(
    [
      ["VOUCH_EDGE_SECRET", env.VOUCH_EDGE_SECRET],
      ["VOUCH_JOURNAL_REFRESH_MS", env.VOUCH_JOURNAL_REFRESH_MS],
      ["VOUCH_JOURNAL_BOUND_MS", env.VOUCH_JOURNAL_BOUND_MS],
      ["VOUCH_JOURNAL_SHARE_SECONDS", env.VOUCH_JOURNAL_SHARE_SECONDS],
      ["VOUCH_TEST_CONTROLS", env.VOUCH_EDGE_TEST_CONTROLS === "1" ? "1" : undefined],
      ["VOUCH_AUDIENCE", env.VOUCH_AUDIENCE],
      ...rateLimits.map((r) => [r.periodVar, String(r.period)]),
      ["VOUCH_DECISION_KEY", decisionKey],
      ["VOUCH_DECISION_KEY_PREVIOUS", env.VOUCH_DECISION_KEY_PREVIOUS],
      // Benchmarks only (read with the test controls on): "off" answers decisions unsigned.
      ["VOUCH_DECISION_SIGNING", env.VOUCH_DECISION_SIGNING],
    ].filter(([, value]) => value !== undefined && value !== ""),
  ),
};
// The body size of a typical /verify answer, so both workers send alike.
const constantBody = JSON.stringify({ agent_id: "ap_" + "0".repeat(32), status: "active", pad: "x".repeat(420) });
const constantWorker = {
  name: "constant",
  modules: true,
  script: `export default { fetch() { return new Response(${JSON.stringify(constantBody)}, { headers: { "content-type": "application/json", "etag": "\\"c\\"" } }); } };`,
  compatibilityDate: "2026-05-01",
  routes: ["constant.bench/*"],
};
const mf = new Miniflare({
  host: "127.0.0.1",
  port: edgePort,
  cf: false,
  kvPersist: env.VOUCH_EDGE_PERSIST ? path.resolve(env.VOUCH_EDGE_PERSIST) : false,
  durableObjectsPersist: env.VOUCH_EDGE_PERSIST ? path.resolve(env.VOUCH_EDGE_PERSIST, "durable-objects") : false,
  workers: env.VOUCH_EDGE_CONSTANT === "1" ? [vouchWorker, constantWorker] : [vouchWorker],
});
const edgeUrl = await mf.ready;
const kv = await mf.getKVNamespace("VOUCH_KV", "vouch-edge");

// ---- the KV REST API shape (https://developers.cloudflare.com/api/resources/kv/) ----
const faults = [];
const stats = { writes: 0, bulk_requests: 0, refused: 0 };
const prefix = `/client/v4/accounts/${account}/storage/kv/namespaces/${namespace}`;

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
const envelope = (result) => ({ success: true, errors: [], messages: [], result });
const failure = (code, message) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function kvApi(req, res, url) {
  if (req.headers.authorization !== `Bearer ${token}`) {
    return reply(res, 401, failure(10000, "Authentication error"));
  }
  if (!url.pathname.startsWith(prefix + "/")) {
    return reply(res, 404, failure(10013, "namespace not found"));
  }
  const fault = faults.length > 0 ? faults[0] : null;
  if (fault) {
    if (--fault.count <= 0) faults.shift();
    if (fault.delay_ms) await new Promise((r) => setTimeout(r, fault.delay_ms));
    if (fault.status) {
      stats.refused++;
      const headers = fault.retry_after !== undefined ? { "retry-after": String(fault.retry_after) } : {};
      return reply(res, fault.status, failure(fault.status === 429 ? 10429 : 10001, "injected fault"), headers);
    }
  }
  const rest = url.pathname.slice(prefix.length + 1);
  if (rest === "bulk" && req.method === "PUT") {
    const pairs = JSON.parse((await body(req)).toString("utf8"));
    if (!Array.isArray(pairs)) return reply(res, 400, failure(10012, "expected an array"));
    for (const pair of pairs) {
      const value = pair.base64 ? Buffer.from(pair.value, "base64") : pair.value;
      await kv.put(pair.key, value, pair.expiration_ttl ? { expirationTtl: pair.expiration_ttl } : {});
    }
    stats.writes += pairs.length;
    stats.bulk_requests++;
    return reply(res, 200, envelope({ successful_key_count: pairs.length, unsuccessful_keys: [] }));
  }
  if (rest === "bulk/delete" && req.method === "POST") {
    const keys = JSON.parse((await body(req)).toString("utf8"));
    for (const key of keys) await kv.delete(key);
    return reply(res, 200, envelope({ successful_key_count: keys.length, unsuccessful_keys: [] }));
  }
  if (rest.startsWith("values/")) {
    const key = decodeURIComponent(rest.slice("values/".length));
    if (req.method === "PUT") {
      await kv.put(key, await body(req));
      stats.writes++;
      return reply(res, 200, envelope({}));
    }
    if (req.method === "GET") {
      const value = await kv.get(key, "arrayBuffer");
      if (value === null) return reply(res, 404, failure(10009, "key not found"));
      res.writeHead(200, { "content-type": "application/octet-stream" });
      return res.end(Buffer.from(value));
    }
    if (req.method === "DELETE") {
      await kv.delete(key);
      return reply(res, 200, envelope({}));
    }
  }
  if (rest === "keys" && req.method === "GET") {
    const listed = await kv.list({ prefix: url.searchParams.get("prefix") ?? undefined });
    return reply(res, 200, { ...envelope(listed.keys), result_info: { count: listed.keys.length, cursor: listed.cursor ?? "" } });
  }
  return reply(res, 404, failure(7003, "no route for that URI"));
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname === "/__control/faults" && req.method === "POST") {
      const fault = JSON.parse((await body(req)).toString("utf8"));
      faults.push({ count: 1, ...fault });
      return reply(res, 200, { queued: faults.length });
    }
    if (url.pathname === "/__control/faults" && req.method === "DELETE") {
      faults.length = 0;
      return reply(res, 200, { queued: 0 });
    }
    if (url.pathname === "/__control/stats") return reply(res, 200, stats);
    // What KV holds under a key, past any queued fault (tests look behind the edge's back).
    if (url.pathname.startsWith("/__control/kv/") && req.method === "GET") {
      const value = await kv.get(decodeURIComponent(url.pathname.slice("/__control/kv/".length)));
      if (value === null) return reply(res, 404, failure(10009, "key not found"));
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(value);
    }
    return await kvApi(req, res, url);
  } catch (err) {
    return reply(res, 500, failure(10001, String(err)));
  }
});
await new Promise((resolve) => server.listen(kvPort, "127.0.0.1", resolve));

const kvBase = `http://127.0.0.1:${server.address().port}/client/v4`;
console.log(JSON.stringify({ edge: edgeUrl.origin, kv_api_base: kvBase, account_id: account, namespace_id: namespace }));

async function stop() {
  server.close();
  await mf.dispose();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
