// A real delivery: the origin posts an event to a receiver in this test, whose signature
// verifyWebhook checks (and refuses once anything is changed).

import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { verifyWebhook, VouchError } from "../src/index.js";
import { activeAgent, admin, setStatus, until } from "./support.js";

interface Delivery {
  body: Buffer;
  headers: IncomingHttpHeaders;
}

test("a delivery of the origin verifies, and a changed one does not", async () => {
  const deliveries: Delivery[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      deliveries.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  try {
    const agent = await activeAgent("Webhook Bot");
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    const hook = await admin<{ secret: string }>("POST", "/v1/webhooks", { org_id: agent.orgId, url, events: ["agent.suspended"] });
    assert.match(hook.secret, /^whsec_/);

    await setStatus(agent.agentId, "suspended", "chargeback spike");
    await until(() => deliveries.length > 0, "the delivery");
    const delivery = deliveries[0];
    assert.ok(delivery);

    // As Node hands the headers over, and as a Fetch API `Headers`.
    const event = verifyWebhook(delivery.body, delivery.headers, hook.secret);
    assert.equal(event.type, "passport.status_changed");
    assert.equal(event.id, delivery.headers["webhook-id"]);
    assert.equal(event.data.agent_id, agent.agentId);
    assert.equal(event.data.typed_event, "agent.suspended");
    assert.equal(event.data.reason, "chargeback spike");
    const fetchHeaders = new Headers();
    for (const [name, value] of Object.entries(delivery.headers)) if (typeof value === "string") fetchHeaders.set(name, value);
    assert.deepEqual(verifyWebhook(delivery.body.toString("utf8"), fetchHeaders, hook.secret), event);

    const refused = (error: unknown) => error instanceof VouchError && error.code === "invalid_webhook";
    const changed = Buffer.from(delivery.body.toString("utf8").replace("chargeback spike", "all clear"));
    assert.throws(() => verifyWebhook(changed, delivery.headers, hook.secret), refused);
    const otherSecret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    assert.throws(() => verifyWebhook(delivery.body, delivery.headers, otherSecret), refused);
    const { "webhook-signature": _gone, ...unsigned } = delivery.headers;
    assert.throws(() => verifyWebhook(delivery.body, unsigned, hook.secret), refused);
    const stale = { ...delivery.headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600) };
    assert.throws(() => verifyWebhook(delivery.body, stale, hook.secret), refused);
  } finally {
    receiver.close();
  }
});
