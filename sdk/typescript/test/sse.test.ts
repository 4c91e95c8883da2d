// The event-stream reader, chunk by chunk.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SseParser } from "../src/index.js";

test("events end at a blank line, whatever the chunks", () => {
  const text = ": keep-alive\n\nid: 7\nevent: stream.opened\ndata: {}\n\nid: 8\r\nevent: passport.status_changed\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: ping\n\n";
  const whole = new SseParser().push(text);
  assert.deepEqual(whole, [
    { id: "7", event: "stream.opened", data: "{}" },
    { id: "8", event: "passport.status_changed", data: '{"a":\n1}' },
  ]);
  // One character at a time (a "\r\n" split across chunks included).
  const parser = new SseParser();
  const split = [...text].flatMap((c) => parser.push(c));
  assert.deepEqual(split, whole);
});

test("a field without a colon and unknown fields are read as the standard says", () => {
  const events = new SseParser().push("data\nretry: 10\nfoo: bar\n\nid: 3\ndata: x\n\ndata: y\n\n");
  assert.deepEqual(events, [
    { id: undefined, event: "message", data: "" },
    { id: "3", event: "message", data: "x" },
    // The last id carries over.
    { id: "3", event: "message", data: "y" },
  ]);
});
