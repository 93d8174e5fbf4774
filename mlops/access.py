"""How an engineer reaches a stack's services from a workstation: the Service and port of each
UI and API, and where its login is. scripts/port-forward.sh prints or runs the port-forwards.

    python -m mlops.access --stack dev

prints one line per service of an enabled component:
`<name> <namespace> <service> <port> <login> <local address> <what it is>`, where login is
`none` or `<user>:<secret>/<key>` (the Kubernetes Secret holding the password).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from infra import config
from infra.components import flyte, flyteauth, grafana, mlflow, prometheus
from mlops import stackfile


@dataclass(frozen=True)
class Access:
    name: str
    namespace: str
    service: str
    port: int
    # (user, Secret, key) of the password; None: the service has no login of its own.
    login: tuple[str, str, str] | None
    what: str
    grpc: bool = False

    @property
    def local_address(self) -> str:
        """Where a port-forward to the same port number serves it."""
        return f"localhost:{self.port}" if self.grpc else f"http://localhost:{self.port}"


def services(cfg: config.PlatformConfig) -> list[Access]:
    """The UIs and APIs of the stack's enabled components."""
    ns = cfg.namespace
    found = []
    if cfg.mlflow is not None:
        found.append(
            Access(
                "mlflow",
                ns,
                mlflow.COMPONENT,
                mlflow.PORT,
                ("admin", mlflow.SECRET_NAME, "admin-password"),
                "MLflow UI and tracking API",
            )
        )
    if cfg.flyte is not None:
        found += [
            Access(
                "flyte-console",
                ns,
                f"{flyte.COMPONENT}-http",
                flyte.HTTP_PORT,
                None,
                "Flyte console (/console: a login through flyte.auth.oidc) and HTTP API "
                "(a client-credentials token)",
            ),
            Access(
                "flyte-api",
                ns,
                f"{flyte.COMPONENT}-grpc",
                flyte.GRPC_PORT,
                (flyteauth.CI_CLIENT, flyteauth.AUTH_SECRET, flyteauth.CI_SECRET_FILE),
                "Flyte gRPC API (pyflyte, flytectl: client mlops-ci, secret flyteClientSecret)",
                grpc=True,
            ),
        ]
    if cfg.monitoring is not None:
        found += [
            Access(
                "grafana",
                ns,
                grafana.GRAFANA,
                grafana.PORT,
                ("admin", grafana.GRAFANA, "admin-password"),
                "Grafana dashboards",
            ),
            Access(
                "prometheus",
                ns,
                prometheus.PROMETHEUS,
                prometheus.PORT,
                None,
                "Prometheus queries, targets and alerts",
            ),
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.access")
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    try:
        cfg = stackfile.read(args.stack).config()
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for access in services(cfg):
        login = "none" if access.login is None else "{}:{}/{}".format(*access.login)
        print(
            access.name,
            access.namespace,
            access.service,
            access.port,
            login,
            access.local_address,
            access.what,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
