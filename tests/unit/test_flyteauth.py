"""Flyte's login: its own authorization server in every stack, client secrets as bcrypt hashes
that a preview renders the same way twice, keys from the stack's secrets, none in a ConfigMap."""

from __future__ import annotations

import base64
from typing import Any

import bcrypt
import pytest
import yaml

from infra import config
from infra.components import flyteauth
from tests.support.rendering import (
    SENTINELS,
    STACKS,
    evaluate,
    raw_config,
    secret_data,
    stack_rendering,
)

OIDC = {"auth": {"oidc": {"baseUrl": "https://id.example.com/realms/ml", "clientId": "flyte"}}}


def core_files(rendering: Any) -> dict[str, Any]:
    data = rendering.find("ConfigMap", "flyte-config").inputs["data"]
    return {name: yaml.safe_load(text) for name, text in data.items()}


def pod(rendering: Any) -> dict[str, Any]:
    return rendering.find("Deployment", "flyte").manifest()["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", STACKS)
def test_auth_is_on_in_every_stack(name: str) -> None:
    auth = core_files(stack_rendering(name))["004-auth.yaml"]
    assert auth["server"]["security"]["useAuth"] is True
    assert auth["auth"]["appAuth"]["authServerType"] == "Self"
    assert set(auth["auth"]["appAuth"]["selfAuthServer"]["staticClients"]) == {
        "flytepropeller",
        "mlops-ci",
    }


def test_the_hash_is_stable_and_verifies_the_secret() -> None:
    first = flyteauth.client_secret_hash("a-client-secret-1234", "mlops-ci", "session-key-abcdef")
    again = flyteauth.client_secret_hash("a-client-secret-1234", "mlops-ci", "session-key-abcdef")
    assert first == again and first.startswith("$2b$08$")
    assert bcrypt.checkpw(b"a-client-secret-1234", first.encode())
    assert not bcrypt.checkpw(b"another-secret-12345", first.encode())
    # Another client, secret or session key: another salt.
    assert flyteauth.client_secret_hash("a-client-secret-1234", "other", "session-key-abcdef") != (
        first
    )
    assert flyteauth.client_secret_hash("a-client-secret-1234", "mlops-ci", "rotated-key-1234") != (
        first
    )


def test_static_client_hashes_live_only_in_the_config_secret() -> None:
    rendering = evaluate({})
    hashes = yaml.safe_load(secret_data(rendering, "flyte-config-secret")["014-auth-secrets.yaml"])
    clients = hashes["auth"]["appAuth"]["selfAuthServer"]["staticClients"]
    for client, key in (
        ("mlops-ci", "flyteClientSecret"),
        ("flytepropeller", "flytePropellerClientSecret"),
    ):
        assert bcrypt.checkpw(SENTINELS[key].encode(), clients[client]["client_secret"].encode())
    # A second render gives the same hashes: a preview shows no change.
    again = evaluate({}, {**SENTINELS})
    assert secret_data(again, "flyte-config-secret") == secret_data(
        rendering, "flyte-config-secret"
    )
    assert "$2b$" not in str(rendering.find("ConfigMap", "flyte-config").inputs)
    listed = core_files(rendering)["004-auth.yaml"]["auth"]["appAuth"]["selfAuthServer"]
    assert all("client_secret" not in c for c in listed["staticClients"].values())


def test_flyteadmin_reads_its_keys_from_the_auth_secret() -> None:
    rendering = evaluate({})
    files = secret_data(rendering, flyteauth.AUTH_SECRET)
    assert set(files) == {
        "client_secret",
        "mlops_ci_client_secret",
        "cookie_hash_key",
        "cookie_block_key",
        "claim_symmetric_key",
        "token_rsa_key.pem",
        "oidc_client_secret",
    }
    assert files["client_secret"] == SENTINELS["flytePropellerClientSecret"]
    assert files["token_rsa_key.pem"] == SENTINELS["flyteTokenSigningKey"]
    # Sizes flyteadmin/auth/init_secrets.go generates, base64 without padding.
    for name, size in (
        ("cookie_hash_key", 64),
        ("cookie_block_key", 32),
        ("claim_symmetric_key", 32),
    ):
        assert len(base64.b64decode(files[name] + "=" * (-len(files[name]) % 4))) == size, name
    mount = next(m for m in pod(rendering)["containers"][0]["volumeMounts"] if m["name"] == "auth")
    assert mount["mountPath"] == "/etc/secrets"
    core = core_files(rendering)["000-core.yaml"]["admin"]
    assert core["clientId"] == "flytepropeller"
    assert core["clientSecretLocation"] == "/etc/secrets/client_secret"


def test_without_an_identity_provider_a_stand_in_issuer_serves_discovery() -> None:
    rendering = evaluate({})
    names = [c["name"] for c in pod(rendering)["containers"]]
    assert names == ["flyte", "oidc-issuer"]
    auth = core_files(rendering)["004-auth.yaml"]["auth"]
    assert auth["userAuth"]["openId"]["baseUrl"] == "http://127.0.0.1:8090"
    document = rendering.find("ConfigMap", flyteauth.ISSUER_CONFIG).inputs["data"]
    assert '"issuer": "http://127.0.0.1:8090"' in document["openid-configuration"]


def test_a_named_identity_provider_logs_people_in() -> None:
    rendering = evaluate({"flyte": OIDC})
    open_id = core_files(rendering)["004-auth.yaml"]["auth"]["userAuth"]["openId"]
    assert open_id["baseUrl"] == "https://id.example.com/realms/ml"
    assert open_id["clientId"] == "flyte"
    assert [c["name"] for c in pod(rendering)["containers"]] == ["flyte"]
    files = secret_data(rendering, flyteauth.AUTH_SECRET)
    assert files["oidc_client_secret"] == SENTINELS["flyteOidcClientSecret"]


def load_error(values: dict[str, Any], secrets: dict[str, str]) -> str:
    raw, keys = raw_config(values, secrets)
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, keys)
    return str(caught.value)


def test_bad_auth_config_is_named_with_what_is_allowed() -> None:
    message = load_error(
        {"flyte": {"auth": {"oidc": {"baseUrl": "http://id.example.com", "clientId": "x y"}}}},
        dict(SENTINELS),
    )
    assert "flyte.auth.oidc.baseUrl = 'http://id.example.com': must be an https URL" in message
    assert "flyte.auth.oidc.clientId = 'x y': must be an OAuth2 client id" in message


def test_the_signing_key_must_be_a_pkcs1_pem() -> None:
    pkcs8 = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    message = load_error({}, {**SENTINELS, "flyteTokenSigningKey": pkcs8})
    assert "flyteTokenSigningKey = [secret]" in message
    assert "-----BEGIN RSA PRIVATE KEY-----" in message


def test_flyte_secrets_in_plain_text_are_refused() -> None:
    raw, keys = raw_config({}, SENTINELS)
    plain = keys - {f"{config.PROJECT}:flyteClientSecret"}
    with pytest.raises(config.ConfigError) as caught:
        config.load("dev", raw, plain)
    assert "flyteClientSecret is stored in plain text" in str(caught.value)


def test_the_oidc_client_secret_is_needed_only_with_a_provider() -> None:
    secrets = {k: v for k, v in SENTINELS.items() if k != "flyteOidcClientSecret"}
    raw, keys = raw_config({}, secrets)
    assert config.load("dev", raw, keys).flyte is not None
    assert "flyteOidcClientSecret" in load_error({"flyte": OIDC}, secrets)


def public_url(dialled: str, authorized: list[str]) -> str:
    """The URL flyteadmin 1.16 answers a client with, as `auth.GetPublicURL` picks it
    (flyteadmin/auth/handler_utils.go at v1.16.8): the address the client dialled, read as
    https://<host:port>, against the authorized URIs; an entry with the same scheme and host wins
    at once, else the last with the same host and port, else the last with the same host, else
    the first. The token endpoint is that URL's /oauth2/token and a token's audience is the URL
    its token request got; a call's token must carry the URL the call gets."""
    host, _, port = dialled.partition(":")
    same_host = same_port = None
    for uri in authorized:
        scheme, rest = uri.split("://")
        entry_host, _, entry_port = rest.partition(":")
        if entry_host == host:
            same_host = uri
            if entry_port == port:
                same_port = uri
            if scheme == "https":
                return uri
    return same_port or same_host or authorized[0]


# (who, the gRPC address it dials, the port-forwards it has: local port -> Service port)
CLIENTS = [
    ("a Flyte task pod", "flyte-grpc.mlops.svc.cluster.local:8089", None),
    ("propeller in the Flyte pod", "localhost:8089", None),
    ("pyflyte after mlops connect", "localhost:8089", {8088: 8088, 8089: 8089}),
]


@pytest.mark.parametrize(("who", "dialled", "forwards"), CLIENTS, ids=[c[0] for c in CLIENTS])
def test_every_client_gets_a_token_endpoint_on_the_http_port_and_a_token_its_calls_accept(
    who: str, dialled: str, forwards: dict[int, int] | None
) -> None:
    uris = core_files(stack_rendering("dev"))["004-auth.yaml"]["auth"]["authorizedUris"]
    issued_by = public_url(dialled, uris)
    token_host = issued_by.split("://")[1]
    # The token endpoint is flyteadmin's HTTP port, reached where the client is.
    port = int(token_host.rpartition(":")[2])
    if forwards is not None:
        assert forwards.get(port) == 8088, (who, token_host)
    else:
        assert port == 8088, (who, token_host)
    # The token request, made to that endpoint, gets the same URL: the audience the calls want.
    assert public_url(token_host, uris) == issued_by, who
