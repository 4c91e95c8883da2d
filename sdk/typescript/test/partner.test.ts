// The partner's side against the real edge: verify with ETag revalidation, decisions that
// allow and deny, their signatures, commits with idempotency.

import assert from "node:assert/strict";
import { test } from "node:test";
import { verifyDecision, Vouch, VouchError, type Decision } from "../src/index.js";
import { activeAgent, agentToken, createPartner, EDGE, setStatus, until } from "./support.js";

const refund = (amount: number) => ({ amount, currency: "USD", region: "US-CA" });

test("verify answers an active agent, then revalidates it with If-None-Match", async () => {
  const agent = await activeAgent("Verify Bot");
  const vouch = Vouch({ edgeUrl: EDGE });
  const first = await vouch.verify(agent.agentId);
  assert.equal(first.allowed, true);
  assert.ok(first.allowed && first.agent.name === "Verify Bot" && first.agent.status === "active");
  assert.equal(vouch.revalidated, 0);
  const second = await vouch.verify(agent.agentId);
  assert.deepEqual(second, first);
  assert.equal(vouch.revalidated, 1, "the second answer was a 304 served from the cache");

  // Until the suspension reaches the edge the kept answer is revalidated (304); then the
  // changed passport is a new answer.
  await setStatus(agent.agentId, "suspended", "fraud review");
  let refusal: Awaited<ReturnType<typeof vouch.verify>> | undefined;
  await until(async () => {
    refusal = await vouch.verify(agent.agentId);
    return !refusal.allowed;
  }, "the edge to refuse the suspended agent");
  assert.ok(refusal && !refusal.allowed);
  assert.equal(refusal.refusal.error, "agent_suspended");
  assert.equal(refusal.refusal.reason, "fraud review");
});

test("verify of an unknown agent is agent_not_found", async () => {
  const vouch = Vouch({ edgeUrl: EDGE });
  await assert.rejects(vouch.verify("ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e"), (error: unknown) => {
    assert.ok(error instanceof VouchError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "agent_not_found");
    return true;
  });
});

/** Decides until the edge knows the token's signing key (KV may lag the first token a moment). */
async function decided(ask: () => Promise<Decision>): Promise<Decision> {
  let decision: Decision | undefined;
  await until(async () => {
    decision = await ask();
    return !decision.reasons.some((r) => r.code === "token_invalid");
  }, "the edge to accept the agent's token");
  assert.ok(decision);
  return decision;
}

test("decide allows within the passport's limits and denies beyond them, signed both ways", async () => {
  const agent = await activeAgent("Decide Bot");
  const partner = await createPartner("Decide Shop");
  const vouch = Vouch({ edgeUrl: EDGE, partnerKey: partner.key });
  const token = await agentToken(agent);
  const allowed = await decided(() => vouch.decide({ token, capability: "payments.refund", context: refund(50) }));
  assert.equal(allowed.allow, true, JSON.stringify(allowed.reasons));
  assert.equal(allowed.agent_id, agent.agentId);
  assert.equal(allowed.partner_id, partner.partnerId);

  const denied = await vouch.decide({ token, capability: "payments.refund", context: { amount: 500, currency: "USD", region: "FR" } });
  assert.equal(denied.allow, false);
  const codes = denied.reasons.map((r) => r.code);
  assert.ok(codes.includes("oap.limit_exceeded"), codes.join());
  assert.ok(codes.includes("oap.region_blocked"), `every failed check is listed: ${codes.join()}`);

  const byId = await vouch.decide({ agentId: agent.agentId, capability: "data.export", context: { rows: 5000 } });
  assert.equal(byId.allow, false);

  // Signatures: over the JCS form, by the key the edge publishes.
  const jwks = await vouch.decisionKeys();
  for (const decision of [allowed, denied, byId]) {
    assert.equal(verifyDecision(decision, jwks), true, decision.decision_id);
    assert.equal(await vouch.verifySignature(decision), true);
  }
  assert.equal(verifyDecision({ ...allowed, allow: false }, jwks), false, "a changed member breaks the signature");
  assert.equal(verifyDecision({ ...denied, reasons: [] }, jwks), false);
  assert.equal(verifyDecision({ ...allowed, kid: "oap:registry:unknown" }, jwks), false);
  const { signature: _dropped, ...unsigned } = allowed;
  assert.equal(verifyDecision(unsigned, jwks), false);
  // The kept copy of the keys is revalidated with its ETag.
  assert.deepEqual(await vouch.decisionKeys(), jwks);
});

test("commit records once per idempotency key and replays the first decision", async () => {
  const agent = await activeAgent("Commit Bot");
  const partner = await createPartner("Commit Shop");
  const vouch = Vouch({ edgeUrl: EDGE, partnerKey: partner.key });
  const agentToken_ = await agentToken(agent, partner.partnerId);
  const key = `order-${Date.now()}`;
  let first: Awaited<ReturnType<typeof vouch.commit>> | undefined;
  await until(async () => {
    first = await vouch.commit({ capability: "payments.refund", context: refund(30) }, { idempotencyKey: key, agentToken: agentToken_ });
    return !first.decision.reasons.some((r) => r.code === "token_invalid");
  }, "the edge to accept the agent's token");
  assert.ok(first);
  assert.equal(first.decision.allow, true, JSON.stringify(first.decision.reasons));
  assert.equal(first.replayed, false);

  const again = await vouch.commit({ capability: "payments.refund", context: refund(30) }, { idempotencyKey: key, agentToken: agentToken_ });
  assert.equal(again.replayed, true);
  assert.deepEqual(again.decision, first.decision, "a replay answers the first decision byte for byte");
  assert.equal(await vouch.verifySignature(again.decision), true);

  await assert.rejects(
    vouch.commit({ capability: "payments.refund", context: refund(31) }, { idempotencyKey: key, agentToken: agentToken_ }),
    (error: unknown) => error instanceof VouchError && error.status === 409 && error.code === "idempotency_key_reused",
  );

  // A token issued for no partner cannot spend the agent's cap.
  const unbound = await agentToken(agent);
  await assert.rejects(
    vouch.commit({ capability: "payments.refund", context: refund(5) }, { idempotencyKey: `${key}-2`, agentToken: unbound }),
    (error: unknown) => error instanceof VouchError && error.status === 403 && error.code === "token_audience_mismatch",
  );

  // Anonymous callers may ask but never commit.
  const anonymous = Vouch({ edgeUrl: EDGE });
  await assert.rejects(
    anonymous.commit({ capability: "payments.refund", context: refund(5) }, { idempotencyKey: key, agentToken: agentToken_ }),
    (error: unknown) => error instanceof VouchError && error.code === "config",
  );
});

test("a bad partner key is refused, never treated as anonymous", async () => {
  const vouch = Vouch({ edgeUrl: EDGE, partnerKey: "vk_partner_not-a-real-key-0000000000000000000000" });
  await assert.rejects(
    vouch.decide({ agentId: "ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e", capability: "payments.refund" }),
    (error: unknown) => error instanceof VouchError && error.status === 401 && error.code === "unauthorized",
  );
});
