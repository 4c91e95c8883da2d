// Retries: a server in this test answers 503 and 429 (with `retry-after`) before it answers;
// the client asks again only as the rules allow.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { parseRetryAfter, retryDelay, Vouch, VouchError } from "../src/index.js";

/** A server answering `answers` in turn (then the last one), counting requests. */
async function scripted(answers: { status: number; headers?: Record<string, string>; body: unknown }[]) {
  let seen = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const answer = answers[Math.min(seen, answers.length - 1)];
      seen++;
      assert.ok(answer);
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen: () => seen, close: () => server.close() };
}

const decision = { decision_id: "dec_1", allow: true, reasons: [], capability: "payments.refund" };

test("429 and 5xx are asked again, honouring retry-after", async () => {
  const server = await scripted([
    { status: 503, headers: { "retry-after": "0" }, body: { error: "ledger_unavailable", message: "try again" } },
    { status: 429, headers: { "retry-after": "1" }, body: { error: "rate_limited", message: "slow down" } },
    { status: 200, body: decision },
  ]);
  try {
    const vouch = Vouch({ edgeUrl: server.url, retry: { baseDelayMs: 1 } });
    const answer = await vouch.decide({ agentId: "ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e", capability: "payments.refund" });
    assert.equal(answer.decision_id, "dec_1");
    assert.equal(server.seen(), 3);
  } finally {
    server.close();
  }
});

test("a retry-after beyond the longest wait is not waited out, and attempts are bounded", async () => {
  const far = await scripted([{ status: 429, headers: { "retry-after": "3600" }, body: { error: "rate_limited", message: "later" } }]);
  try {
    const vouch = Vouch({ edgeUrl: far.url });
    await assert.rejects(vouch.verify("ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e"), (error: unknown) => {
      assert.ok(error instanceof VouchError);
      assert.equal(error.code, "rate_limited");
      assert.equal(error.retryAfterMs, 3_600_000);
      return true;
    });
    assert.equal(far.seen(), 1);
  } finally {
    far.close();
  }
  const failing = await scripted([{ status: 502, body: { error: "bad_gateway", message: "down" } }]);
  try {
    const vouch = Vouch({ edgeUrl: failing.url, retry: { maxAttempts: 3, baseDelayMs: 1 } });
    await assert.rejects(vouch.verify("ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e"), (error: unknown) => error instanceof VouchError && error.status === 502);
    assert.equal(failing.seen(), 3);
  } finally {
    failing.close();
  }
  const notRetried = await scripted([{ status: 501, body: { error: "not_implemented", message: "no" } }]);
  try {
    await assert.rejects(Vouch({ edgeUrl: notRetried.url, retry: { baseDelayMs: 1 } }).verify("ap_0192f2a4c3b87c1e9d2b4a6f8e0c1d2e"));
    assert.equal(notRetried.seen(), 1);
  } finally {
    notRetried.close();
  }
});

test("waits double with jitter, and retry-after reads seconds and dates", () => {
  const policy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 300 };
  for (let i = 0; i < 50; i++) {
    const first = retryDelay(policy, 1) ?? -1;
    assert.ok(first >= 50 && first <= 100, String(first));
    const second = retryDelay(policy, 2) ?? -1;
    assert.ok(second >= 100 && second <= 200, String(second));
    const third = retryDelay(policy, 3) ?? -1;
    assert.ok(third >= 150 && third <= 300, String(third));
  }
  assert.equal(retryDelay(policy, 4), undefined);
  assert.equal(retryDelay(policy, 1, 250), 250);
  assert.equal(retryDelay(policy, 1, 301), undefined);
  const now = Date.parse("Sun, 06 Nov 1994 08:49:37 GMT");
  assert.equal(parseRetryAfter(" 120 ", now), 120_000);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now), 10_000);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter("-1", now), undefined);
});
