"""`mlops connect` and `mlops env`: a stack's services and tools from the user's own shell.

connect forwards each UI and API of the stack's enabled components to localhost (on the same
port number) and writes the client settings for those addresses; env prints the exports that
make plain `pulumi`, `kubectl`, `pyflyte` and the MLflow client work on the stack.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlops import access, clientconfig, console, deploy, render, state, workspace
from mlops.errors import UserError
from mlops.verify import kubeconfig_value

# The Pulumi config keys of the logins a user's clients need (read when the shell runs them).
MLFLOW_PASSWORD_KEY = "mlflowAdminPassword"
FLYTE_SECRET_KEY = "flyteClientSecret"


@dataclass(frozen=True)
class Forward:
    service: access.Access
    process: subprocess.Popen[str]


def self_command() -> str:
    """How a shell runs this same `mlops`."""
    return f"{shlex.quote(sys.executable)} -m mlops"


def write_clients(stack: str) -> list[Path]:
    """Client settings for the forwarded addresses, under the stack's state directory."""
    cfg = deploy.config_of(stack)
    services = {s.name: s for s in access.services(cfg)}
    flyte = services.get("flyte-api")
    mlflow = services.get("mlflow")
    outputs = render.render_stack(stack).outputs
    return clientconfig.write(
        outputs,
        state.clients_dir(stack),
        flyte.local_address if flyte else None,
        mlflow.local_address if mlflow else None,
    )


def login_hint(stack: str, service: access.Access) -> str:
    if service.login is None:
        return "no login of its own"
    user, secret, key = service.login
    return (
        f"login {user}, password: kubectl -n {service.namespace} get secret {secret} "
        f'-o jsonpath={{.data.{key}}} | base64 -d   (after eval "$(mlops env {stack})")'
    )


def describe(stack: str) -> list[str]:
    lines = []
    for service in access.services(deploy.config_of(stack)):
        lines.append(f"{service.name:14} {service.local_address:23} {service.what}")
        lines.append(f"{'':14} {login_hint(stack, service)}")
    return lines


def connect(stack: str, until: float | None = None) -> None:
    """Runs the port-forwards until interrupted (or `until` seconds), after writing the client
    settings for them."""
    record = deploy.record_of(stack)
    k = deploy.kube_of(record)
    written = write_clients(stack)
    forwards: list[Forward] = []
    try:
        for service in access.services(deploy.config_of(stack)):
            process = subprocess.Popen(
                k.command(
                    "port-forward",
                    "-n",
                    service.namespace,
                    "--address=127.0.0.1",
                    f"service/{service.service}",
                    f"{service.port}:{service.port}",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            forwards.append(Forward(service, process))
        for forward in forwards:
            assert forward.process.stdout is not None
            line = forward.process.stdout.readline()
            if "Forwarding from" not in line:
                errors = forward.process.stderr.read() if forward.process.stderr else ""
                raise UserError(
                    f"port-forward of {forward.service.name} to localhost:{forward.service.port} "
                    f"failed: {(line + errors).strip()}"
                )
        console.out.print(f"stack {stack}: forwarding to localhost (Ctrl-C stops)")
        for line in describe(stack):
            console.out.print(f"  {line}")
        console.out.print(f"client settings: {', '.join(str(p) for p in written)}")
        console.out.print(f'in another shell: eval "$(mlops env {stack})"')
        deadline = None if until is None else time.monotonic() + until
        while deadline is None or time.monotonic() < deadline:
            stopped = [f for f in forwards if f.process.poll() is not None]
            if stopped:
                raise UserError(
                    f"the port-forward of {stopped[0].service.name} stopped (the service or the "
                    "cluster went away?)"
                )
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for forward in forwards:
            forward.process.terminate()


def exports(stack: str) -> list[str]:
    """Shell lines for `eval`: the stack's Pulumi CLI, backend, passphrase and selected stack,
    kubectl on its pinned context, and (after `mlops connect`) the clients' settings. Secrets
    are not printed: the lines read them when the shell evaluates them."""
    record = deploy.record_of(stack)
    pulumi = deploy.pulumi_for(deploy.target_of(record))
    variables = workspace.environment(record, pulumi)
    # Selecting the stack in Pulumi's workspace lets plain `pulumi` commands find it.
    workspace.open_stack(record, pulumi)
    # PATH gains this environment's commands (mlops, pyflyte) and the stack's Pulumi CLI, ahead
    # of the shell's own PATH, not a copy of this process's.
    variables.pop("PATH", None)
    first = [str(Path(sys.executable).parent)]
    if pulumi.root is not None:
        first.append(str(pulumi.root / "bin"))
    variables["KUBECONFIG"] = kubeconfig_value(record)
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(variables.items())]
    lines.append(f'export PATH={shlex.quote(os.pathsep.join(first))}"{os.pathsep}$PATH"')
    lines.append(
        f"# pulumi stack select {stack} has been run; kubectl uses context {record.context}"
    )
    clients = state.clients_dir(stack)
    cfg = deploy.config_of(stack)
    secret = f"{self_command()} secrets get {stack}"
    if (clients / "flyte" / "config.yaml").exists():
        lines.append(
            f"export FLYTECTL_CONFIG={shlex.quote(str(clients / 'flyte' / 'config.yaml'))}"
        )
        lines.append(f'export {clientconfig.CLIENT_SECRET_ENV}="$({secret} {FLYTE_SECRET_KEY})"')
    if (clients / "mlflow.env").exists() and cfg.mlflow is not None:
        for line in (clients / "mlflow.env").read_text().splitlines():
            if line and not line.startswith("#"):
                name, value = line.split("=", 1)
                lines.append(f"export {name}={shlex.quote(value)}")
        lines.append(f'export MLFLOW_TRACKING_PASSWORD="$({secret} {MLFLOW_PASSWORD_KEY})"')
    if not clients.exists():
        lines.append(f"# client settings (pyflyte, MLflow): run mlops connect {stack} first")
    return lines
