"""APort's own OAP client library (`aporthq-sdk-python`, PyPI, MIT) against the local edge, for
tests/edge/oap.rs: what an OAP verifier's code gets from Vouch, and whether it can check it.

No Vouch code runs here. The library asks `POST /api/verify/policy/{pack}` the way it asks
APort's hosted API (its `verify_policy`, with the partner key as its API key), and the decision
it returns is checked with independent code: RFC 8785 by `rfc8785`, Ed25519 by `cryptography`,
against the edge's published `/.well-known/oap/jwks.json`.

    python oap_client.py EDGE_URL PARTNER_KEY AGENT PACK ALLOWED_CONTEXT DENIED_CONTEXT

prints one JSON object with what it found, and exits non-zero only when it cannot run.
"""

import asyncio
import base64
import json
import sys

import httpx
import rfc8785
from aporthq_sdk_python import APortClient, APortClientOptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verified(decision, keys):
    """Whether `decision` is signed by the key its `kid` names, over its RFC 8785 form."""
    key = keys.get(decision.get("kid"))
    signature = decision.get("signature", "")
    if key is None or not signature.startswith("ed25519:"):
        return False
    unsigned = {k: v for k, v in decision.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(signature[len("ed25519:"):]), rfc8785.dumps(unsigned))
        return True
    except InvalidSignature:
        return False


async def main(edge, partner_key, agent, pack, allowed, denied):
    jwks = httpx.get(f"{edge}/.well-known/oap/jwks.json").json()
    keys = {
        k["kid"]: Ed25519PublicKey.from_public_bytes(b64url(k["x"]))
        for k in jwks["keys"]
        if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"
    }
    options = APortClientOptions(base_url=edge, api_key=partner_key)
    async with APortClient(options) as client:
        allow = await client.verify_policy(agent, pack, allowed)
        deny = await client.verify_policy(agent, pack, denied)
        # The same request through the library's own transport, for the whole decision object
        # (its response type keeps only the members it knows, `kid` not among them).
        body = client._build_policy_request_body(agent_id=agent, policy_id=pack, context=allowed)
        raw = await client._make_request("POST", f"/api/verify/policy/{pack}", data=body)
    raw.pop("_meta", None)
    tampered = dict(raw, allow=not raw.get("allow"))
    print(json.dumps({
        "allow": allow.allow,
        "allow_signature": allow.signature,
        "allow_digest": allow.passport_digest,
        "deny": deny.allow,
        "deny_codes": [r.get("code") for r in (deny.reasons or [])],
        "raw_allow": raw.get("allow"),
        "raw_partner": raw.get("partner_id"),
        "raw_verified": verified(raw, keys),
        "tampered_verified": verified(tampered, keys),
    }))


if __name__ == "__main__":
    edge, key, agent, pack, allowed, denied = sys.argv[1:7]
    asyncio.run(main(edge, key, agent, pack, json.loads(allowed), json.loads(denied)))
