// The agent's side against the real origin: tokens (kept, refreshed, for a partner), the
// heartbeat, and the lifecycle stream that hears of the agent's own suspension, resuming after
// a stop from the last event it had.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeJwt } from "jose";
import { Agent, verifyTokenOffline, Vouch, VouchError, type LifecycleChange } from "../src/index.js";
import { activeAgent, createPartner, EDGE, ORIGIN, setStatus, until } from "./support.js";

test("tokens are fetched once, kept, and issued for a partner when asked", async () => {
  const seeded = await activeAgent("Token Bot");
  const partner = await createPartner("Token Shop");
  const agent = Agent({ originUrl: ORIGIN, agentId: seeded.agentId, apiKey: seeded.apiKey });
  const token = await agent.token();
  const claims = decodeJwt(token);
  assert.equal(claims.sub, seeded.agentId);
  assert.equal(claims.aud, undefined);
  assert.equal(await agent.token(), token, "a kept token is reused");
  const [a, b] = await Promise.all([agent.token({ audience: partner.partnerId }), agent.token({ audience: partner.partnerId })]);
  assert.equal(a, b, "callers asking at once share one request");
  assert.equal(decodeJwt(a).aud, partner.partnerId);
  agent.forgetTokens();
  const narrowed = await agent.token({ scope: "data.export" });
  assert.equal(decodeJwt(narrowed).scope, "data.export");

  // The token verifies offline against the keys the edge publishes (no status list yet).
  const jwks = await Vouch({ edgeUrl: EDGE }).tokenKeys();
  const offline = await verifyTokenOffline(token, { jwks, issuer: String(claims.iss) });
  assert.ok(offline.valid, JSON.stringify(offline));
  assert.equal(offline.agentId, seeded.agentId);

  const wrong = Agent({ originUrl: ORIGIN, agentId: seeded.agentId, apiKey: "vk_agent_wrong-key-000000000000000000000000000" });
  await assert.rejects(wrong.token(), (error: unknown) => error instanceof VouchError && error.status === 401 && error.code === "invalid_client");
});

test("the heartbeat records the agent's health and tells its status", async () => {
  const seeded = await activeAgent("Heartbeat Bot");
  const agent = Agent({ originUrl: ORIGIN, agentId: seeded.agentId, apiKey: seeded.apiKey });
  const ack = await agent.heartbeat("degraded");
  assert.equal(ack.agent_id, seeded.agentId);
  assert.equal(ack.status, "active");
  assert.equal(ack.health, "degraded");
  assert.equal(agent.status, "active");
});

test("the stream tells the agent of its own suspension, and a restarted one resumes", async () => {
  const seeded = await activeAgent("Lifecycle Bot");
  const changes: LifecycleChange[] = [];
  const errors: unknown[] = [];
  const agent = Agent({
    originUrl: ORIGIN,
    agentId: seeded.agentId,
    apiKey: seeded.apiKey,
    heartbeatIntervalMs: 0,
    onSuspended: (change) => void changes.push(change),
    onActivated: (change) => void changes.push(change),
    onError: (error) => void errors.push(error),
  });
  await agent.token();
  await agent.heartbeat();
  await agent.start();
  assert.ok(agent.lastEventId !== undefined, "the stream opened at a position");

  await setStatus(seeded.agentId, "suspended", "compliance hold");
  await until(() => changes.length === 1, "onSuspended");
  const suspended = changes[0];
  assert.ok(suspended);
  assert.equal(suspended.status, "suspended");
  assert.equal(suspended.previousStatus, "active");
  assert.equal(suspended.reason, "compliance hold");
  assert.equal(suspended.via, "stream");
  assert.equal(suspended.event?.type, "passport.status_changed");
  assert.equal(agent.status, "suspended");
  // A suspended agent gets no token, and the kept one was dropped.
  await assert.rejects(agent.token(), (error: unknown) => error instanceof VouchError && error.code === "invalid_client");

  // Stopped, it misses nothing: started again, it resumes after the last event it had.
  await agent.stop();
  await setStatus(seeded.agentId, "active", "cleared");
  await agent.start();
  await until(() => changes.length === 2, "onActivated from the resumed stream");
  assert.equal(changes[1]?.status, "active");
  assert.equal(changes[1]?.via, "stream");
  await agent.stop();
  assert.deepEqual(errors, []);

  // A key the origin refuses: start says so instead of waiting for ever.
  const refused = Agent({ originUrl: ORIGIN, agentId: seeded.agentId, apiKey: "vk_agent_wrong-key-000000000000000000000000000", heartbeatIntervalMs: 0 });
  await assert.rejects(refused.start(), (error: unknown) => error instanceof VouchError && error.status === 401);
});
