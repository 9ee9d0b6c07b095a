#!/usr/bin/env python3
"""RFC 8693 token exchange against Tessera, with Authlib as an independent client.

The wire format is Authlib's, not ours: its requests client (``OAuth2Session``) authenticates
with ``client_secret_basic``, builds the form body and parses the JSON response or error.

1. ``client_credentials``: the client's own access token, used as the actor token.
2. A token exchange (delegation): the user's access token as subject, the actor token, for
   ``--audience`` with ``--scope``. Checks the response fields RFC 8693 §2.2.1 requires and the
   issued JWT's claims (``sub``, ``aud``, ``act``, ``client_id``, ``exp``); with ``--jwks-uri`` the
   signature is verified too (joserfc, the JOSE library Authlib depends on).
3. Errors, as Authlib surfaces them (``OAuthError.error``): a garbage subject token is
   ``invalid_grant`` (RFC 8693 §2.2.2); an audience the policy does not list is ``invalid_target``.

Arguments may also come from the environment (``TESSERA_TOKEN_ENDPOINT``, ``TESSERA_CLIENT_ID``,
``TESSERA_CLIENT_SECRET``, ``TESSERA_SUBJECT_TOKEN``, ``TESSERA_JWKS_URI``). Prints one JSON line
with what it saw; exits 1 if any check failed, 2 on bad arguments.

Wall-clock checks (``exp`` in the future) are deliberately absent: the test server runs on a mock
clock. Expiry is checked relative to the subject token and ``expires_in`` instead.
"""

import argparse
import base64
import json
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def option(name, env, required=True, default=None, help=None):
        value = os.environ.get(env, default)
        parser.add_argument(
            name,
            default=value,
            required=required and value is None,
            help=f"{help or ''} (env {env})".strip(),
        )

    option("--token-endpoint", "TESSERA_TOKEN_ENDPOINT", help="the token endpoint URL")
    option("--client-id", "TESSERA_CLIENT_ID")
    option("--client-secret", "TESSERA_CLIENT_SECRET")
    option("--subject-token", "TESSERA_SUBJECT_TOKEN", help="the user's access token")
    option("--jwks-uri", "TESSERA_JWKS_URI", required=False, help="verify the issued JWT's signature")
    parser.add_argument("--audience", default="backend")
    parser.add_argument("--scope", default="orders.read")
    parser.add_argument("--forbidden-audience", default="payroll", help="an audience the policy does not list")
    parser.add_argument("--expected-actor", default=None, help="act.sub expected; default: the client id")
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser.parse_args()


def jwt_part(token, index):
    """The decoded header (0) or payload (1) of a compact JWS, without verification."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Checks:
    def __init__(self):
        self.failures = []

    def that(self, condition, what):
        if not condition:
            self.failures.append(what)
        return condition

    def equal(self, seen, expected, what):
        return self.that(seen == expected, f"{what}: expected {expected!r}, saw {seen!r}")


class Wire:
    """An ``access_token_response`` compliance hook: remembers the raw HTTP response."""

    def __init__(self):
        self.last = None

    def __call__(self, response):
        self.last = response
        return response

    def summary(self):
        response = self.last
        return {
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "cache_control": response.headers.get("Cache-Control"),
            # How Authlib authenticated the client: the scheme of the Authorization header sent.
            "client_auth": (response.request.headers.get("Authorization") or "none").split(" ")[0],
        }


def verify_signature(token, jwks_uri, timeout):
    """Verifies the JWS with the server's JWKS (joserfc); returns the verified claims."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    key_set = KeySet.import_key_set(requests.get(jwks_uri, timeout=timeout).json())
    algorithm = jwt_part(token, 0)["alg"]
    return jwt.decode(token, key_set, algorithms=[algorithm]).claims


def expect_error(session, endpoint, wire, checks, name, expected, **params):
    """Runs an exchange that must fail; returns what Authlib raised and the wire status."""
    try:
        token = session.fetch_token(endpoint, grant_type=GRANT, **params)
    except OAuthError as error:
        seen = {"error": error.error, "description": error.description, **wire.summary()}
        checks.equal(error.error, expected, f"{name}: OAuthError.error")
        checks.equal(seen["status"], 400, f"{name}: HTTP status")
        checks.that(
            (seen["content_type"] or "").startswith("application/json"),
            f"{name}: error content type {seen['content_type']!r}",
        )
        return seen
    checks.that(False, f"{name}: expected {expected}, got a token: {sorted(token)}")
    return {"error": None}


def main():
    args = arguments()
    expected_actor = args.expected_actor or args.client_id
    checks = Checks()
    wire = Wire()
    report = {"authlib": __import__("authlib").__version__}

    session = OAuth2Session(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        default_timeout=args.timeout,
    )
    session.register_compliance_hook("access_token_response", wire)

    # (a) The client's own token: the actor.
    own = session.fetch_token(args.token_endpoint, grant_type="client_credentials")
    checks.equal(own.get("token_type"), "Bearer", "client_credentials token_type")
    actor_token = own["access_token"]
    report["client_credentials"] = {"token_type": own.get("token_type"), "scope": own.get("scope")}

    # (b) Delegation: the user's token as subject, the client's as actor, for the audience.
    # Authlib's fetch_token takes any grant_type string and puts every other keyword argument
    # (non-empty) into the form body (authlib.oauth2.rfc6749.parameters.prepare_token_request).
    exchanged = session.fetch_token(
        args.token_endpoint,
        grant_type=GRANT,
        subject_token=args.subject_token,
        subject_token_type=ACCESS_TOKEN,
        actor_token=actor_token,
        actor_token_type=ACCESS_TOKEN,
        audience=args.audience,
        scope=args.scope,
    )
    response = wire.summary()
    checks.equal(response["status"], 200, "exchange HTTP status")
    checks.equal(response["client_auth"], "Basic", "client authentication (client_secret_basic)")
    checks.that(
        "no-store" in (response["cache_control"] or ""),
        f"exchange Cache-Control must be no-store (RFC 6749 §5.1), saw {response['cache_control']!r}",
    )
    issued = exchanged.get("access_token")
    checks.that(isinstance(issued, str) and issued, "exchange access_token present")
    checks.equal(exchanged.get("issued_token_type"), ACCESS_TOKEN, "issued_token_type")
    checks.equal(exchanged.get("token_type"), "Bearer", "token_type")
    expires_in = exchanged.get("expires_in")
    checks.that(
        isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0,
        f"expires_in must be a positive integer, saw {expires_in!r}",
    )
    checks.equal(exchanged.get("scope"), args.scope, "scope")
    checks.that("refresh_token" not in exchanged, "no refresh_token unless requested")
    report["exchange"] = {
        "http": response,
        **{key: exchanged.get(key) for key in ("issued_token_type", "token_type", "expires_in", "scope")},
    }

    if isinstance(issued, str) and issued.count(".") == 2:
        claims = jwt_part(issued, 1)
        subject = jwt_part(args.subject_token, 1)
        checks.equal(claims.get("sub"), subject.get("sub"), "sub is the subject token's")
        checks.equal(claims.get("aud"), args.audience, "aud")
        checks.equal(claims.get("act"), {"sub": expected_actor}, "act")
        checks.equal(claims.get("client_id"), args.client_id, "client_id")
        checks.equal(claims.get("scope"), args.scope, "scope claim")
        if checks.that(isinstance(claims.get("exp"), int), "exp claim"):
            checks.that(claims["exp"] <= subject.get("exp", 0), "never outlives the subject token")
            if isinstance(claims.get("iat"), int) and isinstance(expires_in, int):
                checks.equal(claims["exp"] - claims["iat"], expires_in, "exp - iat = expires_in")
        verified = None
        if args.jwks_uri:
            verified = verify_signature(issued, args.jwks_uri, args.timeout) == claims
            checks.that(verified, "JWT signature verified with the JWKS and the same claims")
        report["claims"] = {key: claims.get(key) for key in ("sub", "aud", "act", "client_id", "scope")}
        report["signature_verified"] = verified
    else:
        checks.that(False, "the exchanged token for the audience is a JWT")

    # (c) Errors, as Authlib surfaces them.
    report["errors"] = {
        "garbage_subject": expect_error(
            session,
            args.token_endpoint,
            wire,
            checks,
            "garbage subject token",
            "invalid_grant",
            subject_token="not-a-token",
            subject_token_type=ACCESS_TOKEN,
            audience=args.audience,
            scope=args.scope,
        ),
        "forbidden_audience": expect_error(
            session,
            args.token_endpoint,
            wire,
            checks,
            "audience not in the policy",
            "invalid_target",
            subject_token=args.subject_token,
            subject_token_type=ACCESS_TOKEN,
            audience=args.forbidden_audience,
        ),
    }

    report["ok"] = not checks.failures
    report["failures"] = checks.failures
    print(json.dumps(report, sort_keys=True))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
