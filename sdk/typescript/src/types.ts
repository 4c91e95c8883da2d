// What Vouch answers, as it is on the wire (SPEC §8, §11, §12). Decisions keep the server's
// member names (snake_case): they are signed as answered, and a receipt checked later must be
// exactly what arrived.

export type AgentStatus = "draft" | "active" | "suspended" | "revoked";
export type AssuranceLevel = "L0" | "L1" | "L2" | "L3";
export type Health = "healthy" | "degraded" | "unhealthy";

export interface Capability {
  id: string;
  params?: Record<string, unknown>;
}

/** The public view of an active agent (`200` of `GET /verify`). */
export interface VerifiedAgent {
  agent_id: string;
  status: AgentStatus;
  name: string;
  owner_display: string;
  role: string | null;
  capabilities: Capability[];
  limits: Record<string, unknown>;
  regions: string[];
  assurance_level: AssuranceLevel;
  tier: "sandbox" | "standard" | "privileged";
  version: number;
  updated_at: string;
  [member: string]: unknown;
}

/** Why an agent that exists may not act (`403` of `GET /verify`). */
export interface Refusal {
  /** `agent_suspended`, `agent_revoked`, `agent_not_active`. */
  error: string;
  message: string;
  agent_id: string;
  status: AgentStatus;
  contact: string;
  reason?: string | null;
  suspended_at?: string | null;
  revoked_at?: string | null;
  [member: string]: unknown;
}

/** The answer of `GET /verify` about an agent that exists. */
export type Verification = { allowed: true; agent: VerifiedAgent } | { allowed: false; refusal: Refusal };

/** One failed (or the one passed) check of a decision. */
export interface Reason {
  /** `oap.allowed`, `oap.limit_exceeded`, `token_expired`… (SPEC §11). */
  code: string;
  message: string;
  limit?: string;
  field?: string;
}

/** A signed decision (`POST /verify`, SPEC §11 and §12). */
export interface Decision {
  decision_id: string;
  allow: boolean;
  reasons: Reason[];
  agent_id: string | null;
  owner_id: string | null;
  assurance_level: AssuranceLevel | null;
  capability: string;
  created_at: string;
  expires_in: number;
  passport_version: number | null;
  passport_digest: string | null;
  chain: string[];
  partner_id?: string;
  kid: string;
  signature: string;
  [member: string]: unknown;
}

/** What a decision is about: the agent's access token (proof that it is the agent), or its id. */
export interface DecisionRequest {
  /** The agent's id (`ap_…`): asks about the agent, proves nothing about the caller. */
  agentId?: string;
  /** An access token of the agent (`eyJ…`), its own or a delegated one. */
  token?: string;
  /** `payments.refund`, `data.export`… */
  capability: string;
  /** The action: `{ amount, currency, region, rows, pii }` (amounts in major units). */
  context?: Record<string, unknown>;
  minAssurance?: AssuranceLevel;
}

/** A commit's answer: the decision, and whether it replays an earlier commit of the same key. */
export interface Committed {
  decision: Decision;
  /** `true` when the edge answered the first decision made under this idempotency key again. */
  replayed: boolean;
}

/** A JSON Web Key Set. */
export interface Jwks {
  keys: JsonWebKeyLike[];
}

export interface JsonWebKeyLike {
  kty: string;
  kid?: string;
  crv?: string;
  x?: string;
  y?: string;
  alg?: string;
  use?: string;
  [member: string]: unknown;
}

/** A webhook or stream event: the outbox envelope (SPEC §7). */
export interface VouchEvent {
  id: string;
  type: string;
  created_at: string;
  org_id: string | null;
  data: Record<string, unknown>;
}
