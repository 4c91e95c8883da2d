// Middleware for Express and Hono that asks the edge for a decision before the handler runs
// and answers `403` with the decision's reasons when it is a denial. Fails closed: when no
// decision can be had (the edge unreachable, an answer whose signature does not verify), the
// answer is `503`, never the handler.

import { VouchError } from "./errors.js";
import type { AssuranceLevel, Decision, DecisionRequest, Reason } from "./types.js";
import type { VouchClient } from "./vouch.js";

/** Who the request acts for: the agent's access token (the default), or an id the caller has already authenticated. */
export type AgentCredential = { token: string } | { agentId: string };

export interface GuardOptions<R> {
  /** The capability the route needs (`payments.refund`), or how to tell it from the request. */
  capability: string | ((request: R) => string);
  /** The action's context (`{ amount, currency, region }`, amounts in major units), from the request. */
  context?: (request: R) => Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;
  /**
   * Where the agent's credential is. Default: its access token as `Authorization: Bearer eyJ…`.
   * Return `{ agentId }` only for a caller you have authenticated yourself: an id alone proves
   * nothing about who sends it.
   */
  credential?: (request: R) => AgentCredential | undefined | Promise<AgentCredential | undefined>;
  minAssurance?: AssuranceLevel;
  /** Check each decision's signature against the edge's published keys before trusting it (default `true`). */
  verifySignature?: boolean;
}

/** What a guard concluded: go on with the decision, or answer this. */
export type Outcome =
  | { ok: true; decision: Decision }
  | { ok: false; status: 401 | 403 | 503; body: GuardRefusal; headers: Record<string, string> };

/** The JSON body of a refusal. */
export interface GuardRefusal {
  /** `agent_not_allowed` (403), `unauthorized` (401), `verification_unavailable` (503). */
  error: string;
  message: string;
  decision_id?: string;
  reasons?: Reason[];
}

type HeaderReader = (name: string) => string | undefined;

/** The agent's token from `Authorization: Bearer …` (never a Vouch secret such as a `vk_…` key). */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  const token = match?.[1];
  return token !== undefined && !token.startsWith("vk_") ? token : undefined;
}

/** The decision for `request`, as an {@link Outcome}. Errors of the caller's own functions are thrown. */
export async function decideFor<R>(client: VouchClient, options: GuardOptions<R>, request: R, header: HeaderReader): Promise<Outcome> {
  const credential = options.credential ? await options.credential(request) : tokenCredential(header);
  if (credential === undefined) {
    return {
      ok: false,
      status: 401,
      headers: { "www-authenticate": "Bearer" },
      body: { error: "unauthorized", message: "this route needs the agent's access token (Authorization: Bearer …)" },
    };
  }
  const capability = typeof options.capability === "function" ? options.capability(request) : options.capability;
  const context = options.context ? await options.context(request) : undefined;
  const ask: DecisionRequest = { capability, ...credential };
  if (context !== undefined) ask.context = context;
  if (options.minAssurance !== undefined) ask.minAssurance = options.minAssurance;
  let decision: Decision;
  try {
    decision = await client.decide(ask);
    if (options.verifySignature !== false && !(await client.verifySignature(decision))) {
      return unavailable("the registry's decision does not carry a valid signature");
    }
  } catch (error) {
    if (error instanceof VouchError) return unavailable(`no decision could be had from the registry: ${error.message}`);
    throw error;
  }
  if (decision.allow) return { ok: true, decision };
  return {
    ok: false,
    status: 403,
    headers: {},
    body: {
      error: "agent_not_allowed",
      message: decision.reasons.map((r) => r.message).join("; ") || "the registry does not allow this agent to do this",
      decision_id: decision.decision_id,
      reasons: decision.reasons,
    },
  };
}

function tokenCredential(header: HeaderReader): AgentCredential | undefined {
  const token = bearerToken(header("authorization"));
  return token === undefined ? undefined : { token };
}

function unavailable(message: string): Outcome {
  return { ok: false, status: 503, headers: { "retry-after": "1" }, body: { error: "verification_unavailable", message } };
}

// ---- Express ------------------------------------------------------------------------------

/** What the Express middleware reads of a request (an Express `Request` is one). */
export interface ExpressRequestLike {
  headers: Record<string, string | string[] | undefined>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body?: any;
}

/** What it uses of a response (an Express `Response` is one). */
export interface ExpressResponseLike {
  status(code: number): unknown;
  set(field: string, value: string): unknown;
  json(body: unknown): unknown;
  locals: Record<string, unknown>;
}

export type ExpressMiddleware<Req> = (req: Req, res: ExpressResponseLike, next: (error?: unknown) => void) => void;

/**
 * Express middleware: an allowed request goes on to the handler with the decision in
 * `res.locals.vouchDecision`; a denial is answered `403 { error: "agent_not_allowed", message,
 * decision_id, reasons }`.
 */
export function expressGuard<Req extends ExpressRequestLike>(client: VouchClient, options: GuardOptions<Req>): ExpressMiddleware<Req> {
  return (req, res, next) => {
    const header: HeaderReader = (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    decideFor(client, options, req, header).then(
      (outcome) => {
        if (outcome.ok) {
          res.locals.vouchDecision = outcome.decision;
          next();
          return;
        }
        for (const [name, value] of Object.entries(outcome.headers)) res.set(name, value);
        res.status(outcome.status);
        res.json(outcome.body);
      },
      (error: unknown) => next(error),
    );
  };
}

// ---- Hono ---------------------------------------------------------------------------------

/** What the Hono middleware uses of a context (a Hono `Context` is one). */
export interface HonoContextLike {
  req: {
    header(name: string): string | undefined;
    query(name: string): string | undefined;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    json<T = any>(): Promise<T>;
    text(): Promise<string>;
  };
  json(body: unknown, status?: number, headers?: Record<string, string>): Response;
  set(key: string, value: unknown): void;
}

export type HonoMiddleware<C> = (c: C, next: () => Promise<void>) => Promise<Response | void>;

/**
 * Hono middleware: an allowed request goes on with the decision as `c.get("vouchDecision")`; a
 * denial is answered `403 { error: "agent_not_allowed", message, decision_id, reasons }`.
 */
export function honoGuard<C extends HonoContextLike>(client: VouchClient, options: GuardOptions<C>): HonoMiddleware<C> {
  return async (c, next) => {
    const outcome = await decideFor(client, options, c, (name) => c.req.header(name));
    if (!outcome.ok) return c.json(outcome.body, outcome.status, outcome.headers);
    c.set("vouchDecision", outcome.decision);
    await next();
  };
}
