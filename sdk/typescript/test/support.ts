// What the tests share: the stack test/run.sh started (its URLs and platform token, from the
// environment) and the admin calls that set a scene up, made with plain fetch (not the SDK).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run the tests with sdk/typescript/test/run.sh`);
  return value;
}

export const ORIGIN = env("VOUCH_TEST_ORIGIN");
export const EDGE = env("VOUCH_TEST_EDGE");
export const ADMIN = env("VOUCH_TEST_ADMIN");

/** A generous deadline for anything that has to propagate (a suspension reaching the edge…). */
export const PATIENCE_MS = 20_000;

export async function admin<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(ORIGIN + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

export interface Seeded {
  orgId: string;
  agentId: string;
  apiKey: string;
}

/** A new org with one active agent holding the seed passport of SPEC §3. */
export async function activeAgent(name: string): Promise<Seeded> {
  const slug = `o${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const org = await admin<{ org_id: string }>("POST", "/v1/orgs", { name: `${name} Org`, slug });
  const registered = await admin<{ agent: { agent_id: string }; api_key: string }>("POST", "/v1/agents", {
    org_id: org.org_id,
    name,
    status: "active",
    owner: { display_name: "Acme Support Team", contact: "security@acme.com" },
    role: "Tier-2 Support",
    capabilities: [
      { id: "payments.refund", params: { max_amount: 100, currency: "USD" } },
      { id: "data.export", params: { max_rows: 1000 } },
    ],
    limits: { refund_usd_max_per_tx: 100, refund_usd_daily_cap: 1000, max_export_rows: 1000, allow_pii: false },
    regions: ["US-NY", "US-CA"],
    assurance_level: "L2",
  });
  const seeded = { orgId: org.org_id, agentId: registered.agent.agent_id, apiKey: registered.api_key };
  await until(async () => (await fetch(`${EDGE}/verify?agent_id=${seeded.agentId}`)).status === 200, "the edge to know the agent");
  return seeded;
}

export async function createPartner(name: string): Promise<{ partnerId: string; key: string }> {
  const partner = await admin<{ partner_id: string; key: string }>("POST", "/v1/partners", { name, contact: "partners@example.com" });
  // A new key reaches the edge through the status journal within moments.
  await until(async () => {
    const response = await fetch(`${EDGE}/verify?agent_id=ap_00000000000000000000000000000000`, { headers: { authorization: `Bearer ${partner.key}` } });
    return response.status !== 401;
  }, "the edge to know the partner's key");
  return { partnerId: partner.partner_id, key: partner.key };
}

export async function setStatus(agentId: string, status: string, reason: string): Promise<void> {
  await admin("PUT", `/v1/agents/${agentId}/status`, { status, reason });
}

/** Waits (polling) until `check` holds, failing after {@link PATIENCE_MS}. */
export async function until(check: () => Promise<boolean> | boolean, what: string, patienceMs = PATIENCE_MS): Promise<void> {
  const deadline = Date.now() + patienceMs;
  for (;;) {
    if (await check()) return;
    assert.ok(Date.now() < deadline, `gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An agent token issued for `audience`, straight from the token endpoint. */
export async function agentToken(seeded: Seeded, audience?: string): Promise<string> {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: seeded.agentId, client_secret: seeded.apiKey });
  if (audience) form.set("audience", audience);
  const response = await fetch(`${ORIGIN}/oauth/token`, { method: "POST", body: form });
  const body = (await response.json()) as { access_token: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.access_token;
}
