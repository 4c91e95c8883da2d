// Vouch for TypeScript: partners verify agents and decide (with Express and Hono middleware),
// agents get tokens, heartbeat and hear of their own suspension.

export { Vouch, VouchClient, VERIFY_CACHE_ENTRIES, type VouchOptions, type CommitOptions } from "./vouch.js";
export {
  Agent,
  AgentClient,
  STREAM_SILENCE_MS,
  type AgentOptions,
  type HeartbeatAck,
  type LifecycleChange,
  type TokenOptions,
  type TokenResponse,
} from "./agent.js";
export { verifyDecision } from "./signature.js";
export { verifyWebhook, type HeadersLike } from "./webhooks.js";
export {
  bearerToken,
  type AgentCredential,
  type ExpressMiddleware,
  type ExpressRequestLike,
  type GuardOptions,
  type GuardRefusal,
  type HonoContextLike,
  type HonoMiddleware,
} from "./middleware.js";
export { verifyTokenOffline, MAX_SKEW_SECONDS, MAX_TOKEN_LENGTH, type AgentClaims, type OfflineOptions, type OfflineResult } from "./offline.js";
export { decodeStatusBytes, parseStatusList, statusAt, STATUS_NAMES, MAX_LIST_BYTES, type StatusBits, type StatusList } from "./statuslist.js";
export { VouchError } from "./errors.js";
export { DEFAULT_RETRY, parseRetryAfter, retryDelay, retryableStatus, type RetryPolicy } from "./retry.js";
export { SseParser, type SseEvent } from "./sse.js";
export type * from "./types.js";
