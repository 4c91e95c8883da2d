// The middleware in real Express and Hono servers, deciding at the real edge: an allowed agent
// reaches the handler with its decision, a denied one gets 403 with the reasons, a request
// without a token gets 401, and an edge that cannot be reached means 503 (fail closed).

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { serve } from "@hono/node-server";
import express from "express";
import { Hono } from "hono";
import { Vouch, type Decision, type GuardRefusal } from "../src/index.js";
import { activeAgent, agentToken, createPartner, EDGE, until, type Seeded } from "./support.js";

let agent: Seeded;
let token: string;
let vouch: ReturnType<typeof Vouch>;

before(async () => {
  agent = await activeAgent("Middleware Bot");
  const partner = await createPartner("Middleware Shop");
  vouch = Vouch({ edgeUrl: EDGE, partnerKey: partner.key });
  token = await agentToken(agent);
  await until(async () => (await vouch.decide({ token, capability: "payments.refund" })).reasons.every((r) => r.code !== "token_invalid"), "the edge to accept the token");
});

const closers: (() => void)[] = [];
after(() => closers.forEach((close) => close()));

async function call(base: string, amount: number, authorization?: string) {
  const response = await fetch(`${base}/refunds`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ amount, currency: "USD", region: "US-CA" }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function expressApp(edge: ReturnType<typeof Vouch>): Promise<string> {
  const app = express();
  app.use(express.json());
  app.post(
    "/refunds",
    edge.express({
      capability: "payments.refund",
      context: (req) => ({ amount: req.body.amount, currency: req.body.currency, region: req.body.region }),
    }),
    (_req, res) => {
      const decision = res.locals.vouchDecision as Decision;
      res.json({ refunded: true, decision_id: decision.decision_id });
    },
  );
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  closers.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

type Env = { Variables: { vouchDecision: Decision } };

async function honoApp(edge: ReturnType<typeof Vouch>): Promise<string> {
  const app = new Hono<Env>();
  app.post(
    "/refunds",
    edge.hono({
      capability: "payments.refund",
      context: async (c) => {
        const body = (await c.req.json()) as Record<string, unknown>;
        return { amount: body.amount, currency: body.currency, region: body.region };
      },
    }),
    (c) => c.json({ refunded: true, decision_id: c.get("vouchDecision").decision_id }),
  );
  const port = await new Promise<number>((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => resolve(info.port));
    closers.push(() => server.close());
  });
  return `http://127.0.0.1:${port}`;
}

for (const [name, start] of [
  ["Express", expressApp],
  ["Hono", honoApp],
] as const) {
  test(`${name}: an allowed agent reaches the handler, a denied one gets 403 with the reasons`, async () => {
    const base = await start(vouch);
    const ok = await call(base, 20, `Bearer ${token}`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.refunded, true);
    assert.match(String(ok.body.decision_id), /^dec_/);

    const refused = await call(base, 250, `Bearer ${token}`);
    assert.equal(refused.status, 403);
    const body = refused.body as unknown as GuardRefusal;
    assert.equal(body.error, "agent_not_allowed");
    assert.ok(body.reasons?.some((r) => r.code === "oap.limit_exceeded"), JSON.stringify(body));
    assert.ok(body.decision_id);
    assert.equal(refused.body.refunded, undefined, "the handler did not run");

    const anonymous = await call(base, 20);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error, "unauthorized");

    const forged = await call(base, 20, "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    assert.equal(forged.status, 403);
    assert.ok((forged.body as unknown as GuardRefusal).reasons?.some((r) => r.code === "token_invalid"));
  });

  test(`${name}: no decision from the edge means 503, never the handler`, async () => {
    const base = await start(Vouch({ edgeUrl: "http://127.0.0.1:9", retry: { maxAttempts: 1 } }));
    const down = await call(base, 20, `Bearer ${token}`);
    assert.equal(down.status, 503);
    assert.equal(down.body.error, "verification_unavailable");
  });
}
