// The partner's side: the edge's `/verify` routes (SPEC §8, §11, §14).

import { VouchError } from "./errors.js";
import { failure, parseJson, Transport, type Answer, type TransportOptions } from "./http.js";
import {
  expressGuard,
  honoGuard,
  type ExpressMiddleware,
  type ExpressRequestLike,
  type GuardOptions,
  type HonoContextLike,
  type HonoMiddleware,
} from "./middleware.js";
import { hasDecisionKey, verifyDecision } from "./signature.js";
import type { Committed, Decision, DecisionRequest, Jwks, Refusal, VerifiedAgent, Verification } from "./types.js";

/** How many `verify` answers a client keeps for revalidation (oldest out). */
export const VERIFY_CACHE_ENTRIES = 4096;

export interface VouchOptions extends TransportOptions {
  /** The edge (`https://verify.example.com`, locally `http://127.0.0.1:8787`). */
  edgeUrl: string;
  /** The partner's key (`vk_partner_…`): decisions name the partner, and only a partner may commit. */
  partnerKey?: string;
}

export interface CommitOptions {
  /** The partner's own key for this commit (1–255 visible ASCII): the same key never counts twice. */
  idempotencyKey: string;
  /** The agent's access token, issued for this partner (`audience=pt_…`). */
  agentToken: string;
}

/** A client of the edge for a partner (or anyone, anonymously, without `partnerKey`). */
export function Vouch(options: VouchOptions): VouchClient {
  return new VouchClient(options);
}

export class VouchClient {
  readonly transport: Transport;
  private readonly partnerKey: string | undefined;
  private readonly cache = new Map<string, { etag: string; answer: Verification }>();
  private revalidations = 0;
  private decisionKeysCache: { etag: string | null; jwks: Jwks } | undefined;

  constructor(options: VouchOptions) {
    this.transport = new Transport(options.edgeUrl, options);
    if (options.partnerKey !== undefined && !options.partnerKey.startsWith("vk_partner_")) {
      throw new VouchError("config", "a partner key starts with `vk_partner_`");
    }
    this.partnerKey = options.partnerKey;
  }

  private auth(): Record<string, string> {
    return this.partnerKey === undefined ? {} : { authorization: `Bearer ${this.partnerKey}` };
  }

  /** How many `verify` calls the edge answered `304 Not Modified`, served from the cache. */
  get revalidated(): number {
    return this.revalidations;
  }

  /**
   * `GET /verify?agent_id=…`: whether the agent may act, and its public view. Each answer is
   * kept with its ETag and asked for again with `If-None-Match`: an unchanged passport comes
   * back as a bodiless `304` and is answered from the cache. An unknown agent is a
   * {@link VouchError} `agent_not_found`.
   */
  async verify(agentId: string): Promise<Verification> {
    const cached = this.cache.get(agentId);
    const headers: Record<string, string> = { ...this.auth() };
    if (cached !== undefined) headers["if-none-match"] = cached.etag;
    const answer = await this.transport.send({
      method: "GET",
      path: `/verify?agent_id=${encodeURIComponent(agentId)}`,
      headers,
      repeatable: true,
    });
    let verification: Verification;
    if (answer.status === 304 && cached !== undefined) {
      this.revalidations++;
      // Most recently used last.
      this.cache.delete(agentId);
      this.cache.set(agentId, cached);
      return cached.answer;
    } else if (answer.status === 200) {
      verification = { allowed: true, agent: parseJson<VerifiedAgent>(answer, "/verify") };
    } else if (answer.status === 403) {
      verification = { allowed: false, refusal: parseJson<Refusal>(answer, "/verify") };
    } else {
      throw failure(answer);
    }
    const etag = answer.headers.get("etag");
    this.cache.delete(agentId);
    if (etag !== null) {
      this.cache.set(agentId, { etag, answer: verification });
      while (this.cache.size > VERIFY_CACHE_ENTRIES) {
        const oldest = this.cache.keys().next().value;
        if (oldest === undefined) break;
        this.cache.delete(oldest);
      }
    }
    return verification;
  }

  /**
   * `POST /verify`: a decision about an action (SPEC §11). Never cached; retried like any
   * question (it records nothing). A denial is a decision too (`allow: false` with every failed
   * check in `reasons`), not an error.
   */
  async decide(request: DecisionRequest): Promise<Decision> {
    const answer = await this.transport.send({
      method: "POST",
      path: "/verify",
      headers: this.auth(),
      json: wire(request),
      repeatable: true,
    });
    if (answer.status !== 200) throw failure(answer);
    return parseJson<Decision>(answer, "/verify");
  }

  /**
   * `POST /verify` with `commit: true`: the decision, recorded against the agent's daily caps
   * once per idempotency key (SPEC §11, §14). Needs the partner key and the agent's token issued
   * for this partner. The same key for the same request replays the first decision
   * (`replayed: true`); the same key for another request is a {@link VouchError}
   * `idempotency_key_reused`. Retried safely: a key is recorded at most once.
   */
  async commit(request: Omit<DecisionRequest, "agentId" | "token">, options: CommitOptions): Promise<Committed> {
    if (this.partnerKey === undefined) {
      throw new VouchError("config", "only a partner commits: create the client with `partnerKey`");
    }
    const body = { ...wire({ ...request, token: options.agentToken }), commit: true, idempotency_key: options.idempotencyKey };
    const answer = await this.transport.send({ method: "POST", path: "/verify", headers: this.auth(), json: body, repeatable: true });
    if (answer.status !== 200) throw failure(answer);
    return {
      decision: parseJson<Decision>(answer, "/verify"),
      replayed: answer.headers.get("idempotent-replayed") === "true",
    };
  }

  /** `POST /verify/batch`: up to 100 decisions (asks only), in order. */
  async decideBatch(requests: DecisionRequest[]): Promise<Decision[]> {
    const answer = await this.transport.json<{ decisions: Decision[] }>({
      method: "POST",
      path: "/verify/batch",
      headers: this.auth(),
      json: { requests: requests.map(wire) },
      repeatable: true,
    });
    return answer.decisions;
  }

  /** `GET /.well-known/jwks.json`: the keys that sign agents' access tokens (for offline checks). */
  async tokenKeys(): Promise<Jwks> {
    return this.transport.json<Jwks>({ method: "GET", path: "/.well-known/jwks.json", repeatable: true });
  }

  /**
   * `GET /.well-known/oap/jwks.json`: the keys that sign decisions, kept and revalidated with
   * its ETag. `refresh: false` answers the kept copy when there is one.
   */
  async decisionKeys(refresh = true): Promise<Jwks> {
    const kept = this.decisionKeysCache;
    if (kept !== undefined && !refresh) return kept.jwks;
    const headers: Record<string, string> = {};
    if (kept?.etag) headers["if-none-match"] = kept.etag;
    const answer: Answer = await this.transport.send({ method: "GET", path: "/.well-known/oap/jwks.json", headers, repeatable: true });
    if (answer.status === 304 && kept !== undefined) return kept.jwks;
    if (answer.status !== 200) throw failure(answer);
    const jwks = parseJson<Jwks>(answer, "/.well-known/oap/jwks.json");
    this.decisionKeysCache = { etag: answer.headers.get("etag"), jwks };
    return jwks;
  }

  /**
   * Whether `decision` was signed by this edge's registry key ({@link verifyDecision} against
   * {@link decisionKeys}; the keys are fetched once, and again when a decision names a key the
   * kept copy does not have, as after a rotation).
   */
  async verifySignature(decision: Decision): Promise<boolean> {
    let jwks = await this.decisionKeys(false);
    if (typeof decision.kid === "string" && !hasDecisionKey(jwks, decision.kid)) jwks = await this.decisionKeys(true);
    return verifyDecision(decision, jwks);
  }

  /** Express middleware: decides before the handler runs; see {@link GuardOptions}. */
  express<Req extends ExpressRequestLike = ExpressRequestLike>(options: GuardOptions<Req>): ExpressMiddleware<Req> {
    return expressGuard(this, options);
  }

  /** Hono middleware: decides before the handler runs; see {@link GuardOptions}. */
  hono<C extends HonoContextLike = HonoContextLike>(options: GuardOptions<C>): HonoMiddleware<C> {
    return honoGuard(this, options);
  }
}

/** The request as the edge reads it. */
function wire(request: DecisionRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { capability: request.capability };
  if (request.agentId !== undefined) body.agent_id = request.agentId;
  if (request.token !== undefined) body.token = request.token;
  if (request.context !== undefined) body.context = request.context;
  if (request.minAssurance !== undefined) body.min_assurance = request.minAssurance;
  return body;
}
