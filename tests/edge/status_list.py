"""An offline verifier of a Vouch access token (SPEC §16), for tests/edge/status_lists.rs.

No Vouch code runs here: PyJWT checks the signatures (ES256, keys from the edge's JWK Set), and
the status list is read with nothing but base64, zlib and bit arithmetic, as
draft-ietf-oauth-status-list describes it (entry i sits in byte i*bits//8, starting at bit
(i*bits) % 8 from the least significant end).

    python status_list.py EDGE_URL ACCESS_TOKEN [OTHER_IDX ...]

verifies the access token, follows its `status.status_list` to the list at the edge, verifies
that too, and prints one JSON object: the token's subject and place, the list's header and
claims, the status of the token's entry and of each OTHER_IDX, and whether the token is refused.
Exits non-zero only when the script itself cannot run.
"""

import base64
import json
import sys
import time
import urllib.request
import zlib

import jwt
from jwt import PyJWK


def fetch(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get("content-type", ""), response.read().decode("ascii")


def key_for(token: str, jwks: dict):
    kid = jwt.get_unverified_header(token)["kid"]
    for candidate in jwks["keys"]:
        if candidate.get("kid") == kid:
            return PyJWK(candidate).key
    raise LookupError(f"no key {kid!r} in the edge's JWK Set")


def entry(lst: bytes, bits: int, index: int) -> int:
    bit = index * bits
    return (lst[bit // 8] >> (bit % 8)) & ((1 << bits) - 1)


def main() -> None:
    edge, access_token, *others = sys.argv[1:]
    _, jwks_text = fetch(f"{edge}/.well-known/jwks.json")
    jwks = json.loads(jwks_text)

    claims = jwt.decode(
        access_token,
        key_for(access_token, jwks),
        algorithms=["ES256"],
        options={"verify_aud": False},
    )
    reference = claims["status"]["status_list"]
    idx, uri = reference["idx"], reference["uri"]

    content_type, list_token = fetch(uri)
    header = jwt.get_unverified_header(list_token)
    list_claims = jwt.decode(list_token, key_for(list_token, jwks), algorithms=["ES256"])
    status_list = list_claims["status_list"]
    bits = status_list["bits"]
    lst = base64.urlsafe_b64decode(status_list["lst"] + "=" * (-len(status_list["lst"]) % 4))
    raw = zlib.decompress(lst)

    status = entry(raw, bits, idx)
    fresh = time.time() - list_claims["iat"] <= 300
    print(
        json.dumps(
            {
                "sub": claims["sub"],
                "idx": idx,
                "uri": uri,
                "content_type": content_type,
                "list_typ": header.get("typ"),
                "list_sub": list_claims["sub"],
                "list_iss": list_claims.get("iss"),
                "ttl": list_claims.get("ttl"),
                "exp_minus_iat": list_claims.get("exp", 0) - list_claims["iat"],
                "bits": bits,
                "entries": len(raw) * 8 // bits,
                "status": status,
                "others": [entry(raw, bits, int(other)) for other in others],
                # The offline decision: the list is about this token's list, and says VALID.
                "refused": not (list_claims["sub"] == uri and fresh and status == 0),
            }
        )
    )


if __name__ == "__main__":
    main()
