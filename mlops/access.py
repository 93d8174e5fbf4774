"""How an engineer reaches a stack's services from a workstation: the Service and port of each
UI and API, and where its login is (`<user>`, and the Kubernetes Secret and key holding the
password). `mlops connect` forwards them and `mlops status` lists them."""

from __future__ import annotations

from dataclasses import dataclass

from infra import config
from infra.components import flyte, flyteauth, grafana, mlflow, prometheus


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
