// An independent check of Vouch's signed decisions (SPEC §12), used by the end-to-end tests:
// RFC 8785 by `canonicalize` (by one of the RFC's authors) and Ed25519 by Node's own crypto,
// no Vouch code. Reads {"jwks": {...}, "decisions": [...], "views": [...]} on standard input
// and prints {"decisions": [{"decision_id", "ok", "error"?}], "digests": ["sha256:…", …]}:
// each decision checked against the JWK Set's key named by its `kid`, each view's digest as
// `passport_digest` should name it.
import crypto from "node:crypto";
import canonicalize from "canonicalize";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const keys = new Map(
  (input.jwks?.keys ?? [])
    .filter((jwk) => jwk.kty === "OKP" && jwk.crv === "Ed25519")
    .map((jwk) => [jwk.kid, crypto.createPublicKey({ key: jwk, format: "jwk" })]),
);

function check(decision) {
  const { signature, ...unsigned } = decision;
  const key = keys.get(decision.kid);
  if (!key) return { decision_id: decision.decision_id, ok: false, error: `no key ${decision.kid}` };
  if (typeof signature !== "string" || !signature.startsWith("ed25519:")) {
    return { decision_id: decision.decision_id, ok: false, error: "no ed25519: signature" };
  }
  const bytes = Buffer.from(canonicalize(unsigned), "utf8");
  const sig = Buffer.from(signature.slice("ed25519:".length), "base64");
  return { decision_id: decision.decision_id, ok: crypto.verify(null, bytes, key, sig) };
}

const digest = (view) =>
  "sha256:" + crypto.createHash("sha256").update(canonicalize(view), "utf8").digest("hex");

console.log(JSON.stringify({
  decisions: (input.decisions ?? []).map(check),
  digests: (input.views ?? []).map(digest),
}));
