"""Independent checks of an agent card the local edge serves (SPEC §15), for tests/edge/a2a.rs.

No Vouch code runs here. Three independent parties look at the card:

- the A2A project's own Python SDK (`a2a-sdk`) fetches it the way an A2A client does
  (`A2ACardResolver` with the agent's record URL as its base, so from
  `/agents/{id}/.well-known/agent-card.json`), parses it into its protobuf `AgentCard`, and
  checks its signature with the SDK's own verifier (`a2a.utils.signing`, PyJWT underneath);
- `jwcrypto` verifies the JWS over the RFC 8785 form that `rfc8785` computes of the card served
  at `/agents/{id}/agent-card.json` without `signatures`, with the key the protected header's
  `jku` and `kid` name;
- the same check on a tampered copy must fail.

    python a2a_card.py EDGE_URL AGENT_ID

prints one JSON object with what each found (see `main`), and exits non-zero only when the
script itself cannot run.
"""

import asyncio
import base64
import copy
import json
import sys

import httpx
import rfc8785
from a2a.client.card_resolver import A2ACardResolver
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier
from google.protobuf.json_format import MessageToDict
from jwcrypto import jwk, jws
from jwt import PyJWK


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwks_key(jwks: dict, kid: str) -> dict:
    for key in jwks.get("keys", []):
        if key.get("kid") == kid:
            return key
    raise LookupError(f"no key {kid!r} in the JWK Set")


def jwcrypto_check(card: dict, jwks: dict) -> dict:
    """The first signature of `card` checked with jwcrypto: {"ok", "kid", "header", "error"?}."""
    signature = card["signatures"][0]
    header = json.loads(b64url_decode(signature["protected"]))
    unsigned = {k: v for k, v in card.items() if k != "signatures"}
    payload = rfc8785.dumps(unsigned)
    token = jws.JWS()
    token.deserialize(
        json.dumps(
            {
                "payload": b64url(payload),
                "protected": signature["protected"],
                "signature": signature["signature"],
            }
        )
    )
    key = jwk.JWK(**jwks_key(jwks, header["kid"]))
    try:
        token.verify(key, alg="EdDSA")
        return {"ok": True, "kid": header["kid"], "header": header}
    except jws.InvalidJWSSignature as error:
        return {"ok": False, "kid": header["kid"], "header": header, "error": repr(error)}


async def main(edge: str, agent: str) -> dict:
    record = f"{edge}/agents/{agent}"
    async with httpx.AsyncClient() as http:
        raw = (await http.get(f"{record}/agent-card.json")).json()
        jku = json.loads(b64url_decode(raw["signatures"][0]["protected"]))["jku"]
        jwks = (await http.get(jku)).json()

        def key_provider(kid, url):
            if url != jku:
                raise LookupError(f"unexpected jku {url!r}")
            return PyJWK(jwks_key(jwks, kid))

        resolver = A2ACardResolver(http, base_url=record)
        parsed = await resolver.get_agent_card()
        try:
            create_signature_verifier(key_provider, ["EdDSA"])(parsed)
            sdk_signature = {"ok": True}
        except SignatureVerificationError as error:
            sdk_signature = {"ok": False, "error": repr(error)}

    tampered = copy.deepcopy(raw)
    tampered["skills"][0]["description"] = "May do anything, anywhere."
    tampered_parsed = copy.deepcopy(parsed)
    tampered_parsed.name = "Someone Else"
    try:
        create_signature_verifier(key_provider, ["EdDSA"])(tampered_parsed)
        sdk_tampered = {"ok": True}
    except SignatureVerificationError as error:
        sdk_tampered = {"ok": False, "error": repr(error)}

    return {
        "jku": jku,
        "sdk": {
            "card": MessageToDict(parsed),
            "signature": sdk_signature,
            "tampered": sdk_tampered,
        },
        "jwcrypto": jwcrypto_check(raw, jwks),
        "jwcrypto_tampered": jwcrypto_check(tampered, jwks),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
