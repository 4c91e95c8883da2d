// A client written against the types openapi-typescript generates from the origin's and the
// edge's /openapi.json (scripts/schemathesis.sh): if a document stops describing what a
// client needs, or stops generating, this stops type-checking.
import type { components as Origin, paths as OriginPaths } from "./generated/origin";
import type { paths as EdgePaths } from "./generated/edge";

type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;

type Registration = Json<OriginPaths["/v1/agents"]["post"]["requestBody"]>;
type Registered = Json<OriginPaths["/v1/agents"]["post"]["responses"][201]>;
type Passport = Origin["schemas"]["Passport"];
type ApiError = Json<OriginPaths["/v1/agents/{agent_id}"]["get"]["responses"][400]>;
type Verified = Json<EdgePaths["/verify"]["get"]["responses"][200]>;
type Refused = Json<EdgePaths["/verify"]["get"]["responses"][403]>;
type DecisionRequest = Json<EdgePaths["/verify"]["post"]["requestBody"]>;
type Decision = Json<EdgePaths["/verify"]["post"]["responses"][200]>;

export const registration: Registration = {
  name: "Acme Support Bot",
  owner: { display_name: "Acme Support Team", contact: "security@acme.com" },
  capabilities: [{ id: "payments.refund", params: { max_amount: 100, currency: "USD" } }],
  regions: ["US-CA"],
};

export function agentOf(registered: Registered): Passport {
  return registered.agent;
}

export function describe(passport: Passport): string {
  const role: string | null | undefined = passport.role;
  return `${passport.agent_id} (${passport.status}, v${passport.version}) ${role ?? ""}`;
}

export function explain(error: ApiError): string {
  return error.field ? `${error.message} (${error.error}, ${error.field})` : error.message;
}

export function mayAct(answer: Verified | Refused): boolean {
  return "error" in answer ? false : answer.status === "active";
}

export const ask: DecisionRequest = {
  agent_id: "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
  capability: "payments.refund",
  context: { amount: 50, currency: "USD", region: "US-CA" },
};

export function reasons(decision: Decision): string[] {
  return decision.allow ? [] : decision.reasons.map((r) => `${r.code}: ${r.message}`);
}
