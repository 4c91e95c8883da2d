// Verifying an agent's access token without calling Vouch (SPEC §16): the signature and claims
// against a cached copy of the registry's token keys (jose), and the agent's status in a cached
// status list, refused (fail closed) once that copy is older than the list's `ttl`.

import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { VouchError } from "./errors.js";
import { parseStatusList, STATUS_NAMES, statusAt, type StatusList } from "./statuslist.js";
import type { Jwks } from "./types.js";

/** The most clock difference a verifier allows (SPEC §5). */
export const MAX_SKEW_SECONDS = 60;
/** The longest token accepted, in bytes (as the edge). */
export const MAX_TOKEN_LENGTH = 8 * 1024;

export interface OfflineOptions {
  /** The registry's token keys (the edge's `GET /.well-known/jwks.json`), cached by the caller. */
  jwks: Jwks;
  /**
   * The status list the token names: its token (`statuslist+jwt`, verified here against
   * `jwks`) or a list already verified by {@link parseStatusList}. Without one the agent's
   * status is not checked (`statusChecked: false`).
   */
  statusList?: string | StatusList;
  /** The `iss` to require (the registry's issuer). */
  issuer?: string;
  /** The `aud` to require (for a partner: its id, `pt_…`). */
  audience?: string;
  /** Clock difference allowed on `exp`, `nbf` and `iat`, in seconds (default and at most 60). */
  clockToleranceSeconds?: number;
  /** Delegated tokens (with `act`) name agents whose status the subject's list entry does not tell: refused unless `true`. */
  allowDelegated?: boolean;
  /** The time to judge by (default: now). */
  now?: Date;
}

/** Claims of a Vouch access token (SPEC §5, §16). */
export interface AgentClaims extends JWTPayload {
  sub: string;
  org?: string;
  scope?: string;
  ver?: number;
  act?: Record<string, unknown>;
  dlg?: string[];
  status?: { status_list?: { idx: number; uri: string } };
}

export type OfflineResult =
  | {
      valid: true;
      agentId: string;
      claims: AgentClaims;
      /** Whether the agent's status was found `active` in a fresh list (`false`: no list was given, or the token names none). */
      statusChecked: boolean;
    }
  | {
      valid: false;
      /**
       * `token_invalid`, `token_expired`, `agent_revoked`, `agent_suspended`, `agent_not_active`,
       * `status_list_stale` (the list is older than its `ttl`: fetch it again),
       * `status_list_invalid`, `status_list_mismatch` (the token names another list),
       * `delegation_unchecked` (a delegated token without `allowDelegated`).
       */
      code: string;
      message: string;
    };

/** Per JWK Set (treat it as immutable: a new set is a new object): its keys for jose, and the lists verified with them. */
interface Verifier {
  keys: JWTVerifyGetKey;
  lists: Map<string, Promise<StatusList>>;
}
const verifiers = new WeakMap<Jwks, Verifier>();
const LIST_CACHE_ENTRIES = 64;

function verifierOf(jwks: Jwks): Verifier {
  let verifier = verifiers.get(jwks);
  if (verifier === undefined) {
    verifier = { keys: createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]), lists: new Map() };
    verifiers.set(jwks, verifier);
  }
  return verifier;
}

/** A status list token, verified with this JWK Set and decoded once per token string (a few are kept). */
function listOf(token: string, verifier: Verifier): Promise<StatusList> {
  const lists = verifier.lists;
  let list = lists.get(token);
  if (list === undefined) {
    list = parseStatusList(token, verifier.keys);
    lists.set(token, list);
    list.catch(() => lists.delete(token));
    while (lists.size > LIST_CACHE_ENTRIES) {
      const oldest = lists.keys().next().value;
      if (oldest === undefined) break;
      lists.delete(oldest);
    }
  }
  return list;
}

const refuse = (code: string, message: string): OfflineResult => ({ valid: false, code, message });

/**
 * Whether `token` is a valid access token of an active agent, judged offline: ES256 signature
 * by a key of `jwks`, `typ: JWT`, `exp`/`nbf`/`iat` within the clock tolerance, `iss` and `aud`
 * when asked for, and, when the token carries a `status` claim and `statusList` is given, the
 * agent's 2-bit status in that list, which must be fresh: a list is relied on until `iat +
 * ttl` (and never past its `exp`); after that every token is refused (`status_list_stale`)
 * until a newer list is given. Never throws for a bad token: the result says why.
 */
export async function verifyTokenOffline(token: string, options: OfflineOptions): Promise<OfflineResult> {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return refuse("token_invalid", "the token is too long");
  const now = options.now ?? new Date();
  const tolerance = Math.min(Math.max(options.clockToleranceSeconds ?? MAX_SKEW_SECONDS, 0), MAX_SKEW_SECONDS);
  const verifier = verifierOf(options.jwks);
  let claims: AgentClaims;
  try {
    const verified = await jwtVerify(token, verifier.keys, {
      algorithms: ["ES256"],
      typ: "JWT",
      clockTolerance: tolerance,
      currentDate: now,
      requiredClaims: ["sub", "exp", "iat"],
      ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      ...(options.audience === undefined ? {} : { audience: options.audience }),
    });
    claims = verified.payload as AgentClaims;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) return refuse("token_expired", "the token has expired");
    return refuse("token_invalid", `the token does not verify: ${(error as Error).message}`);
  }
  if (typeof claims.sub !== "string" || !/^ap_[0-9a-f]{32}$/.test(claims.sub)) return refuse("token_invalid", "the token's `sub` is not an agent id");
  if (claims.act !== undefined && options.allowDelegated !== true) {
    return refuse("delegation_unchecked", "a delegated token names agents whose status a status list entry does not give; ask the edge (`decide`) or pass `allowDelegated`");
  }
  const reference = claims.status?.status_list;
  if (reference === undefined || options.statusList === undefined) {
    return { valid: true, agentId: claims.sub, claims, statusChecked: false };
  }
  if (!Number.isSafeInteger(reference.idx) || reference.idx < 0 || typeof reference.uri !== "string") {
    return refuse("token_invalid", "the token's `status` claim is malformed");
  }
  let list: StatusList;
  try {
    list = typeof options.statusList === "string" ? await listOf(options.statusList, verifier) : options.statusList;
  } catch (error) {
    return refuse("status_list_invalid", error instanceof VouchError ? error.message : String(error));
  }
  if (list.uri !== reference.uri) return refuse("status_list_mismatch", `the token's status is in ${reference.uri}, not in ${list.uri}`);
  const nowSeconds = now.getTime() / 1000;
  const until = Math.min(list.ttl === undefined ? Infinity : list.issuedAt + list.ttl, list.expiresAt ?? Infinity);
  if (!(nowSeconds <= until)) {
    return refuse(
      "status_list_stale",
      until === Infinity ? "the status list has neither `ttl` nor `exp`: its age cannot be judged" : "the status list is older than its `ttl`: fetch it again",
    );
  }
  const status = statusAt(list.bytes, list.bits, reference.idx);
  if (status === undefined) return refuse("status_list_invalid", `the status list has no entry ${reference.idx}`);
  if (status !== 0) {
    const name = STATUS_NAMES[status] ?? "not_active";
    const code = name === "revoked" ? "agent_revoked" : name === "suspended" ? "agent_suspended" : "agent_not_active";
    return refuse(code, `the status list says the agent is ${name.replace("_", " ")}`);
  }
  return { valid: true, agentId: claims.sub, claims, statusChecked: true };
}
