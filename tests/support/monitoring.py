"""The monitoring servers on loopback, for tests that follow metrics and alerts end to end:
a webhook receiver that collects what Alertmanager delivers, and the pinned Prometheus,
Alertmanager and Pushgateway (scripts/prometheus.sh builds them; without a binary a test skips,
or fails when the test command sets MLOPS_REQUIRE_SERVICES=1).

Each server gets a free loopback port and a temporary data directory, is waited for until it is
ready, and is stopped on exit:

    with webhook_receiver() as receiver, running_pushgateway() as gateway:
        secrets = {alertmanager.WEBHOOK_URL: receiver.url}
        with running_alertmanager(loopback_alertmanager_config(rendering), secrets) as am:
            config = loopback_prometheus_config(rendering, {"pushgateway": gateway}, am)
            rules = rules_firing_at_once(rendering, {"FeatureDriftHigh": None})
            with running_prometheus(config, rules) as prometheus:
                ...  # push to the gateway
                alert = receiver.wait_for("FeatureDriftHigh", timeout=60)

(`rendering` with a webhook receiver set: `monitoring.alertmanager.receivers.webhook: {}`.)
The loopback_* and rules_* functions turn the rendered configs into what runs on loopback.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from infra.components import alertmanager as alertmanager_component
from mlops import render
from tests.support import tools
from tests.support.rendering import SENTINELS, evaluate, secret_data
from tests.support.servers import free_port, running_server


@dataclass
class Receiver:
    """What a webhook receiver has been sent: Alertmanager's payloads, in arrival order."""

    url: str
    payloads: list[dict[str, Any]] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def _add(self, payload: dict[str, Any]) -> None:
        with self._arrived:
            self.payloads.append(payload)
            self._arrived.notify_all()

    def alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """Every alert delivered so far (each with labels, annotations and status), or those
        of one alertname."""
        with self._arrived:
            found = [a for p in self.payloads for a in p["alerts"]]
        return [a for a in found if alertname is None or a["labels"]["alertname"] == alertname]

    def wait_for(
        self, alertname: str, timeout: float = 60, status: str = "firing"
    ) -> dict[str, Any]:
        """The first delivered alert of that name and status; fails after `timeout` seconds,
        naming what did arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for alert in self.alerts(alertname):
                    if alert["status"] == status:
                        return alert
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({a["labels"]["alertname"] for a in self.alerts()})
                    raise AssertionError(f"no {status} {alertname} within {timeout} s; got {seen}")
                self._arrived.wait(left)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """An HTTP server on loopback that records every JSON payload POSTed to it; point a
    webhook receiver's URL (`receiver.url`) at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver._add(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _work_dir(work: Path | None, name: str) -> Iterator[Path]:
    """`work`/`name` (kept, for a test's tmp_path), or a temporary directory removed on exit."""
    if work is not None:
        (work / name).mkdir(parents=True, exist_ok=True)
        yield work / name
        return
    with tempfile.TemporaryDirectory(prefix="mlops-monitoring-") as made:
        yield Path(made)


def _text(config: str | Path | Mapping[str, Any]) -> str:
    if isinstance(config, Path):
        return config.read_text()
    if isinstance(config, str):
        return config
    return yaml.safe_dump(dict(config), sort_keys=False)


@contextlib.contextmanager
def running_alertmanager(
    config: str | Path | Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    work: Path | None = None,
) -> Iterator[str]:
    """The pinned Alertmanager with `config` (alertmanager.yml as text, a file or a dict),
    clustering off; yields its base URL (http://127.0.0.1:<port>).

    `secrets` are the files the rendered config reads from the mounted Secret (key -> content,
    such as {"webhook-url": receiver.url}): they are written into the work directory and the
    config's mount path is moved there."""
    binary = tools.alertmanager()
    with _work_dir(work, "alertmanager") as root:
        secrets_dir = root / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        for key, content in (secrets or {}).items():
            (secrets_dir / key).write_text(content)
        text = _text(config).replace(alertmanager_component.SECRETS_DIR, str(secrets_dir))
        config_file = root / "alertmanager.yml"
        config_file.write_text(text)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        with running_server(command, f"{url}/-/ready", root, timeout=60):
            yield url


@contextlib.contextmanager
def running_pushgateway(work: Path | None = None) -> Iterator[str]:
    """The pinned Pushgateway, its persistence file in the work directory; yields its base
    URL. Push with PUT/POST <url>/metrics/job/<job>[/<label>/<value>...], delete a group with
    DELETE on the same path."""
    binary = tools.pushgateway()
    with _work_dir(work, "pushgateway") as root:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={root / 'metrics.db'}",
        ]
        with running_server(command, f"{url}/-/ready", root, timeout=60):
            yield url


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its base URL and its HTTP API."""

    url: str

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            return json.load(response)["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {labels}, "value": [time, "value"]}, ...]."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The query's result once it is not empty; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(expr)
            if found:
                return found
            assert time.monotonic() < deadline, f"{expr}: still empty after {timeout} s"
            time.sleep(0.5)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts its rules hold now (pending and firing)."""
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found


@contextlib.contextmanager
def running_prometheus(
    config: Mapping[str, Any],
    rule_files: Mapping[str, str] | None = None,
    interval: str = "1s",
    work: Path | None = None,
) -> Iterator[Prometheus]:
    """The pinned Prometheus with `config` (prometheus.yaml as a dict: scrape jobs, `alerting`
    with loopback addresses), its rule files (name -> text) loaded instead of the config's own
    `rule_files`, scraping and evaluating every `interval`. Each helper takes `work` (a test's
    tmp_path) to keep its files and server.log for a failure's post-mortem."""
    binary = tools.prometheus_server()
    with _work_dir(work, "prometheus") as root:
        rules_dir = root / "rules"
        rules_dir.mkdir(exist_ok=True)
        for name, text in (rule_files or {}).items():
            (rules_dir / name).write_text(text)
        settings = dict(config)
        settings["global"] = {
            **settings.get("global", {}),
            "scrape_interval": interval,
            "evaluation_interval": interval,
        }
        settings["rule_files"] = [str(rules_dir / name) for name in rule_files or {}]
        config_file = root / "prometheus.yaml"
        config_file.write_text(yaml.safe_dump(settings, sort_keys=False))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running_server(command, f"{url}/-/ready", root, timeout=60):
            yield Prometheus(url)


# ---- The rendered monitoring configs, moved to loopback ------------------------------------
# A stack with the webhook receiver on, its URL a secret that tests replace with a receiver's.
WEBHOOK_STACK: dict[str, Any] = {"monitoring": {"alertmanager": {"receivers": {"webhook": {}}}}}
WEBHOOK_URL = "https://hooks.example.com/replaced-by-the-test-receiver"


def webhook_stack_rendering() -> render.Rendering:
    """The default stack with a webhook receiver, rendered under mocks."""
    return evaluate(WEBHOOK_STACK, {**SENTINELS, "alertmanagerWebhookUrl": WEBHOOK_URL})


def rendered_config(rendering: render.Rendering, name: str, key: str) -> dict[str, Any]:
    """A rendered ConfigMap's YAML file, parsed."""
    return yaml.safe_load(rendering.find("ConfigMap", name).inputs["data"][key])  # type: ignore[no-any-return]


def webhook_secret(rendering: render.Rendering, receiver: Receiver) -> dict[str, str]:
    """The rendered receivers Secret's files, the webhook URL pointed at `receiver`."""
    files = secret_data(rendering, alertmanager_component.SECRET)
    assert files == {alertmanager_component.WEBHOOK_URL: WEBHOOK_URL}
    return {alertmanager_component.WEBHOOK_URL: receiver.url}


def loopback_alertmanager_config(
    rendering: render.Rendering, group_wait: str = "1s", group_interval: str = "1s"
) -> dict[str, Any]:
    """The rendered alertmanager.yml, its grouping timers shrunk (a second by default)."""
    config = rendered_config(rendering, "alertmanager-config", "alertmanager.yml")
    config["route"].update({"group_wait": group_wait, "group_interval": group_interval})
    return config


def loopback_prometheus_config(
    rendering: render.Rendering, jobs: Mapping[str, str], alertmanager_url: str | None = None
) -> dict[str, Any]:
    """The rendered prometheus.yaml with only `jobs` scraped (scrape job name -> a loopback
    host:port or URL, such as {"pushgateway": gateway}), each as rendered (labels,
    honor_labels, paths); alerts go to `alertmanager_url`, or nowhere without one."""
    config = rendered_config(rendering, "prometheus-config", "prometheus.yaml")
    kept = []
    for job in config["scrape_configs"]:
        if job["job_name"] in jobs:
            address = jobs[job["job_name"]].removeprefix("http://")
            job["static_configs"][0]["targets"] = [address]
            kept.append(job)
    missing = set(jobs) - {j["job_name"] for j in kept}
    assert not missing, f"no rendered scrape job {sorted(missing)}"
    config["scrape_configs"] = kept
    [target] = config["alerting"]["alertmanagers"][0]["static_configs"]
    assert target["targets"] == [alertmanager_component.address(rendering.config.namespace)]
    if alertmanager_url is None:
        del config["alerting"]
    else:
        target["targets"] = [alertmanager_url.removeprefix("http://")]
    return config


def rules_firing_at_once(
    rendering: render.Rendering, alerts: Mapping[str, str | None]
) -> dict[str, str]:
    """The rendered rule files with only `alerts` kept (alertname -> None to keep its
    expression, or one to replace it), every hold (`for:`) zero so they fire at the first
    evaluation that finds them true. A replaced expression gets the stack's namespace label,
    as the real ones' `by (namespace)` keeps it."""
    files = {}
    namespace = rendering.config.namespace
    for name, text in rendering.find("ConfigMap", "prometheus-rules").inputs["data"].items():
        document = yaml.safe_load(text)
        for group in document["groups"]:
            group["rules"] = [r for r in group["rules"] if r["alert"] in alerts]
            for rule in group["rules"]:
                rule["for"] = "0s"
                replacement = alerts[rule["alert"]]
                if replacement is not None:
                    rule["expr"] = (
                        f'label_replace({replacement}, "namespace", "{namespace}", "", "")'
                    )
        document["groups"] = [g for g in document["groups"] if g["rules"]]
        if document["groups"]:
            files[name] = yaml.safe_dump(document, sort_keys=False)
    found = {
        r["alert"] for t in files.values() for g in yaml.safe_load(t)["groups"] for r in g["rules"]
    }
    assert found == set(alerts), f"no rendered rule {sorted(set(alerts) - found)}"
    return files
