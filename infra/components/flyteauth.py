"""Flyte's authentication: flyteadmin's own OAuth2 authorization server (`authServerType: Self`),
its static clients and its keys, for infra/components/flyte.py.

Programs log in with client credentials: flytepropeller as `flytepropeller`, CI, pyflyte and the
tasks as `mlops-ci`. flyte-binary keeps each static client's secret as a bcrypt hash; the salt is
derived from the secret and the session key, so a preview renders the same hash every time.
The keys flyteadmin reads through its secret manager (files under /etc/secrets, named as in
flyteadmin/auth/config/config.go) come from Pulumi secrets: the cookie and claim keys are derived
from `flyteSessionKey`, the token signing key is `flyteTokenSigningKey`.

flyteadmin builds an OpenID Connect provider at start whenever auth is on
(flyteadmin/auth/auth_context.go): without `flyte.auth.oidc` a stand-in issuer in the pod
serves a discovery document whose endpoints lead nowhere, so people have no browser login and
programs log in as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import bcrypt
import pulumi
import yaml

from infra.config import FlyteConfig
from infra.configtypes import reveal

CI_CLIENT = "mlops-ci"
PROPELLER_CLIENT = "flytepropeller"
# flytestdlib's file secret manager reads /etc/secrets/<name> (secrets.secrets-prefix default).
SECRETS_DIR = "/etc/secrets"
AUTH_SECRET = "flyte-auth"
PROPELLER_SECRET_FILE = "client_secret"
# The CI client's secret beside it, for an engineer's port-forward (mlops/access.py).
CI_SECRET_FILE = "mlops_ci_client_secret"
SCOPES = ["all", "offline", "access_token"]
# The stand-in issuer: a static discovery document on a port of the Flyte pod.
ISSUER_PORT = 8090
ISSUER_DIR = "/srv/oidc"
ISSUER_CONFIG = "flyte-oidc-issuer"
BCRYPT_COST = 8


def _bcrypt_base64(raw: bytes) -> bytes:
    standard = base64.b64encode(raw).rstrip(b"=")
    return standard.translate(
        bytes.maketrans(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        )
    )


def client_secret_hash(secret: str, client: str, session_key: str) -> str:
    """The bcrypt hash flyteadmin compares a client's secret with; the same inputs give the
    same hash (the salt is an HMAC of the client and secret under the session key)."""
    digest = hmac.new(session_key.encode(), f"{client}:{secret}".encode(), hashlib.sha256)
    salt = f"$2b${BCRYPT_COST:02d}$".encode() + _bcrypt_base64(digest.digest()[:16])[:22]
    return bcrypt.hashpw(secret.encode(), salt).decode()


def derived_key(session_key: str, purpose: str, size: int) -> str:
    """`size` bytes for one purpose, base64 without padding, as flyteadmin decodes its keys."""
    digest = hmac.new(session_key.encode(), purpose.encode(), hashlib.sha512).digest()
    return base64.b64encode(digest[:size]).decode().rstrip("=")


def authorized_uris(
    namespace: str, service: str, port: int, ingress_urls: tuple[str, ...]
) -> list[str]:
    """Where clients reach flyteadmin's HTTP port: the in-cluster Service names (as the upstream
    chart lists them), a port-forward's localhost, and the ingress hosts.

    flyteadmin answers a client with the entry whose host (then port) matches the address it
    dialled, else the first, and builds the token endpoint and the tokens' audience from it.
    Only the HTTP port serves /oauth2/token, so the gRPC port is listed nowhere: a client
    dialling flyte-grpc gets the in-cluster HTTP address, one dialling localhost:8089 gets
    localhost:8088, and both its token request and its calls see the same audience."""
    found = [
        f"http://{service}.{namespace}.svc.cluster.local:{port}",
        f"http://{service}.{namespace}.svc:{port}",
        f"http://{service}.{namespace}:{port}",
        f"http://{service}:{port}",
    ]
    return [*found, f"http://localhost:{port}", *ingress_urls]


def issuer_url(cfg: FlyteConfig) -> str:
    return cfg.auth.oidc.base_url if cfg.auth.oidc else f"http://127.0.0.1:{ISSUER_PORT}"


def _client(client: str, grants: list[str]) -> dict[str, Any]:
    return {
        "id": client,
        "grant_types": grants,
        "response_types": ["token"],
        "scopes": SCOPES,
        "redirect_uris": [],
    }


def config_file(
    cfg: FlyteConfig, namespace: str, http: tuple[str, int], ingress_urls: tuple[str, ...]
) -> dict[str, Any]:
    """The auth settings (004-auth.yaml): no secret, no hash. `http` is the Service and port
    of flyteadmin's HTTP API."""
    oidc = cfg.auth.oidc
    return {
        "auth": {
            "appAuth": {
                "authServerType": "Self",
                "selfAuthServer": {
                    "staticClients": {
                        PROPELLER_CLIENT: _client(
                            PROPELLER_CLIENT, ["refresh_token", "client_credentials"]
                        ),
                        CI_CLIENT: _client(CI_CLIENT, ["client_credentials"]),
                    }
                },
            },
            "authorizedUris": authorized_uris(namespace, *http, ingress_urls),
            "userAuth": {
                "openId": {
                    "baseUrl": issuer_url(cfg),
                    "clientId": oidc.client_id if oidc else "flyte",
                    "scopes": ["openid", "profile"],
                }
            },
        },
        "server": {"security": {"useAuth": True}},
    }


def secret_file(cfg: FlyteConfig) -> pulumi.Output[str]:
    """The static clients' secret hashes (014-auth-secrets.yaml), for the config Secret."""

    def render(values: list[str]) -> str:
        propeller, ci, session = values
        clients = {
            PROPELLER_CLIENT: {
                "client_secret": client_secret_hash(propeller, PROPELLER_CLIENT, session)
            },
            CI_CLIENT: {"client_secret": client_secret_hash(ci, CI_CLIENT, session)},
        }
        return yaml.safe_dump({"auth": {"appAuth": {"selfAuthServer": {"staticClients": clients}}}})

    return pulumi.Output.all(
        reveal(cfg.propeller_client_secret),
        reveal(cfg.client_secret),
        reveal(cfg.session_key),
    ).apply(render)


def secret_files(cfg: FlyteConfig) -> dict[str, pulumi.Output[str]]:
    """The files flyteadmin and flytepropeller read from /etc/secrets."""
    session = reveal(cfg.session_key)
    files = {
        PROPELLER_SECRET_FILE: reveal(cfg.propeller_client_secret),
        CI_SECRET_FILE: reveal(cfg.client_secret),
        # flyteadmin/auth/init_secrets.go: 64, 32 and 32 bytes.
        "cookie_hash_key": session.apply(lambda k: derived_key(k, "cookie_hash_key", 64)),
        "cookie_block_key": session.apply(lambda k: derived_key(k, "cookie_block_key", 32)),
        "claim_symmetric_key": session.apply(lambda k: derived_key(k, "claim_symmetric_key", 32)),
        "token_rsa_key.pem": reveal(cfg.token_signing_key),
    }
    # The OAuth2 client config reads it at start; without a provider nothing uses it.
    files["oidc_client_secret"] = (
        reveal(cfg.auth.oidc.client_secret)
        if cfg.auth.oidc
        else session.apply(lambda k: derived_key(k, "oidc_client_secret", 32))
    )
    return files


def issuer_document() -> str:
    """The stand-in issuer's discovery document (go-oidc checks `issuer` against baseUrl)."""
    issuer = f"http://127.0.0.1:{ISSUER_PORT}"
    return json.dumps(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/no-browser-login",
            "token_endpoint": f"{issuer}/no-browser-login",
            "jwks_uri": f"{issuer}/no-browser-login",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        },
        sort_keys=True,
    )
