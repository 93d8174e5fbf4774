"""The train step: the training workflow registered with the stack's workload image (`--copy
none`: the image holds the code the tasks run) and launched through Flyte's API as the client
mlops-ci, over port-forwards to flyte-grpc and flyte-http, then followed until it ends.

flyteadmin sends a client that dials localhost to the token endpoint http://localhost:8088 (its
authorized URIs, infra/components/flyteauth.py), so flyte-http is forwarded to that local port,
or one already there (`mlops connect`) is used.

The client's secret is read from the cluster's Secret and handed to pyflyte and FlyteRemote
in memory and through the child's environment; it is never printed or written to a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from infra.components import flyte, flyteauth
from mlops import clientconfig, console
from mlops.demo import data
from mlops.demo.target import DemoTarget
from mlops.errors import StepFailed, UserError
from mlops.paths import ROOT

WORKFLOW = "workloads.training.workflow.training"
WORKFLOW_FILE = "workloads/training/workflow.py"
# The workflows whose launch plans run on a schedule: weekly training, the hourly drift check.
SCHEDULED_FILES = (WORKFLOW_FILE, "workloads/monitoring/workflow.py")
# The first run builds the training frames and trains on the kind runner in about 15 minutes.
TRAINING_TIMEOUT = 40 * 60
POLL_SECONDS = 10.0


@dataclass(frozen=True)
class Trained:
    project: str
    domain: str
    version: str
    execution: str
    phase: str


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


@contextmanager
def flyte_client_config(endpoint: str) -> Iterator[Path]:
    """pyflyte's config for `endpoint` (no secret in it: it names the variable to read)."""
    with tempfile.TemporaryDirectory(prefix="mlops-demo-") as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(
            yaml.safe_dump(clientconfig.flyte_config(endpoint, None, flyteauth.CI_CLIENT))
        )
        yield path


def register(
    config: Path,
    secret: str,
    image: str,
    project: str,
    domain: str,
    version: str,
    files: tuple[str, ...] = (WORKFLOW_FILE,),
    activate: bool = False,
) -> None:
    """`pyflyte register` of the workflow files with the image (`--activate-launchplans`: their
    scheduled launch plans start running)."""
    command = [
        str(Path(sys.executable).parent / "pyflyte"),
        "--config",
        str(config),
        "register",
        "--copy",
        "none",
        "--image",
        image,
        "--project",
        project,
        "--domain",
        domain,
        "--version",
        version,
        *(["--activate-launchplans"] if activate else []),
        *files,
    ]
    with console.step(f"registering {', '.join(files)} as {project}/{domain} version {version}"):
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, clientconfig.CLIENT_SECRET_ENV: secret},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        output = (done.stdout[-3000:] + done.stderr[-3000:]).strip()
        raise StepFailed(f"pyflyte register failed:\n{redact(output, secret)}")


def remote_for(config: Path, secret: str, project: str, domain: str) -> Any:
    """FlyteRemote logged in as the client of `config`, with the secret given in memory."""
    from flytekit.configuration import AuthType, Config
    from flytekit.remote import FlyteRemote

    settings = Config.auto(str(config))
    platform = dataclasses.replace(
        settings.platform, client_credentials_secret=secret, auth_mode=AuthType.CLIENTSECRET
    )
    return FlyteRemote(
        settings.with_params(platform=platform), default_project=project, default_domain=domain
    )


def phase_of(execution: Any) -> str:
    from flytekit.models.core.execution import WorkflowExecutionPhase

    return str(WorkflowExecutionPhase.enum_to_string(execution.closure.phase))


def follow(remote: Any, execution: Any, name: str, timeout: float) -> Any:
    """The execution once done, its phase shown as it goes."""
    give_up = time.monotonic() + timeout
    with console.waiting(f"training execution {name}") as update:
        while not execution.is_done:
            if time.monotonic() > give_up:
                raise StepFailed(
                    f"training execution {name} is still {phase_of(execution)} after "
                    f"{timeout / 60:.0f} min; it goes on in Flyte (its console, or flytectl "
                    f"get execution)"
                )
            update(phase_of(execution))
            time.sleep(POLL_SECONDS)
            execution = remote.sync_execution(execution)
    return execution


@contextmanager
def token_endpoint(target: DemoTarget) -> Iterator[None]:
    """flyteadmin's HTTP port on localhost:8088, where its token endpoint is for a client on
    localhost: a port-forward, or the one `mlops connect` already runs there."""
    with contextlib.ExitStack() as forwards:
        try:
            forwards.enter_context(
                target.kube.forward(
                    target.namespace,
                    f"{flyte.COMPONENT}-http",
                    flyte.HTTP_PORT,
                    local=flyte.HTTP_PORT,
                )
            )
        except UserError as refused:
            try:
                urllib.request.urlopen(
                    f"http://localhost:{flyte.HTTP_PORT}/healthcheck", timeout=10
                ).close()
            except OSError:
                raise UserError(
                    f"local port {flyte.HTTP_PORT} is taken by something other than this "
                    "stack's Flyte, and Flyte issues logins there to a client on localhost: "
                    f"free it, or run mlops connect {target.stack} in another shell ({refused})"
                ) from None
        yield


def train(target: DemoTarget, timeout: float = TRAINING_TIMEOUT) -> Trained:
    """Registers the training workflow, runs it on the seeded data's last day and waits for
    it: its deploy task creates or updates the InferenceService."""
    import grpc
    import requests
    from flytekit.clients.auth.exceptions import AccessTokenNotFoundError, AuthenticationError
    from flytekit.exceptions.base import FlyteException

    settings = target.config.flyte
    assert settings is not None, "checked by target_of"
    project, domain = settings.projects[0], settings.domains[0]
    version = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    secret = target.kube.secret_value(
        target.namespace, flyteauth.AUTH_SECRET, flyteauth.CI_SECRET_FILE
    )
    service = f"{flyte.COMPONENT}-grpc"
    with (
        token_endpoint(target),
        target.kube.forward(target.namespace, service, flyte.GRPC_PORT) as port,
        flyte_client_config(f"localhost:{port}") as config,
    ):
        register(config, secret, target.config.images.workloads, project, domain, version)
        try:
            # flytekit logs to standard output, which holds the command's results.
            with contextlib.redirect_stdout(sys.stderr):
                remote = remote_for(config, secret, project, domain)
                plan = remote.fetch_launch_plan(name=WORKFLOW, version=version)
                execution = remote.execute(plan, inputs={"run_at": data.RUN_AT})
                name = f"{project}/{domain}/{execution.id.name}"
                console.say(f"launched training execution {name} (run_at {data.RUN_AT:%Y-%m-%d})")
                execution = follow(remote, execution, name, timeout)
        except (
            FlyteException,
            grpc.RpcError,
            requests.RequestException,
            AuthenticationError,
            AccessTokenNotFoundError,
        ) as error:
            raise StepFailed(f"Flyte at {service}: {redact(str(error), secret)}") from None
    phase = phase_of(execution)
    if phase != "SUCCEEDED":
        failure = execution.closure.error
        message = failure.message if failure is not None else "no error reported"
        raise StepFailed(f"training execution {name} ended {phase}: {redact(message, secret)}")
    return Trained(project, domain, version, execution.id.name, phase)


def schedule(target: DemoTarget) -> str:
    """Registers the training and drift-check workflows with their launch plans active (weekly
    training, the hourly drift check that retrains on drift); the version registered."""
    settings = target.config.flyte
    assert settings is not None, "checked by target_of"
    project, domain = settings.projects[0], settings.domains[0]
    version = f"scheduled-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    secret = target.kube.secret_value(
        target.namespace, flyteauth.AUTH_SECRET, flyteauth.CI_SECRET_FILE
    )
    with (
        token_endpoint(target),
        target.kube.forward(target.namespace, f"{flyte.COMPONENT}-grpc", flyte.GRPC_PORT) as port,
        flyte_client_config(f"localhost:{port}") as config,
    ):
        register(
            config,
            secret,
            target.config.images.workloads,
            project,
            domain,
            version,
            files=SCHEDULED_FILES,
            activate=True,
        )
    return version
