"""Platform checks on a deployed stack: what a platform engineer checks after a deploy.

They run in both modes of the integration tier (conftest.py): on the local control plane right
after `mlops up ci`, and against a live stack (`mlops verify`). Checks of the
objects run everywhere; checks marked `containers` look inside the running pods (testinfra's
kubectl backend, which needs /bin/sh in the image) or talk to the servers through
`kubectl port-forward`, and skip on kwok, where no container runs.

Images: postgres, redis, seaweedfs (alpine), mlflow (python slim), flyte-binary (debian slim),
the feast feature server (UBI 9), prometheus and postgres_exporter (busybox) and grafana have a
shell; redis_exporter (scratch) has none, so its port is read from the redis container (one
network namespace per pod) and its UID is held by the pod spec.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from infra import versions
from infra.components import backup
from infra.config import PlatformConfig, section
from mlops import render
from tests.integration.conftest import Cluster
from tests.support.inside import http_get, listeners, processes, reachable_from_other_pods

PART_OF = "app.kubernetes.io/part-of=mlops-platform"
# Secret keys that hold credentials (the others hold hosts, ports and names).
CREDENTIAL = re.compile(r"password|secret|key|url|uri|ini|token", re.IGNORECASE)


@dataclass(frozen=True)
class Workload:
    section: str
    kind: str
    name: str
    uid: int
    # Absent when the section points at an `external` service instead.
    in_cluster_only: bool = True


WORKLOADS = (
    Workload("postgres", "StatefulSet", "postgres", versions.POSTGRES_UID),
    Workload("postgres", "Job", "postgres-init", versions.POSTGRES_UID, in_cluster_only=False),
    Workload("redis", "StatefulSet", "redis", versions.REDIS_UID),
    Workload("objectStore", "StatefulSet", "seaweedfs", versions.SEAWEEDFS_UID),
    Workload("objectStore", "Job", "seaweedfs-buckets", versions.SEAWEEDFS_UID),
    Workload("mlflow", "Deployment", "mlflow", versions.MLFLOW_UID),
    Workload("mlflow", "Job", "mlflow-db-upgrade", versions.MLFLOW_UID),
    Workload("flyte", "Deployment", "flyte", versions.FLYTE_UID),
    Workload("feast", "Deployment", "feast", versions.FEAST_UID),
    Workload("feast", "Job", "feast-apply", versions.WORKLOADS_UID),
    Workload("feast", "CronJob", "feast-materialize", versions.WORKLOADS_UID),
    Workload("monitoring", "StatefulSet", "prometheus", versions.PROMETHEUS_UID),
    Workload("monitoring", "Deployment", "grafana", versions.GRAFANA_UID),
    Workload("monitoring", "StatefulSet", "alertmanager", versions.ALERTMANAGER_UID),
    Workload("monitoring", "Deployment", "pushgateway", versions.PUSHGATEWAY_UID),
    Workload("backups", "CronJob", "backup-postgres", backup.UID, in_cluster_only=False),
    Workload("backups", "CronJob", "backup-redis", backup.UID, in_cluster_only=False),
    Workload("backups", "CronJob", "restore-postgres", backup.UID, in_cluster_only=False),
    Workload("backups", "CronJob", "restore-redis", backup.UID, in_cluster_only=False),
)
SERVERS = [w.name for w in WORKLOADS if w.kind in ("Deployment", "StatefulSet")]


def expected(config: PlatformConfig) -> list[Workload]:
    """The workloads the stack's config turns on."""
    found = []
    for workload in WORKLOADS:
        part = section(config, workload.section)
        if part is not None and not (workload.in_cluster_only and getattr(part, "external", None)):
            found.append(workload)
    return found


def server(cluster: Cluster, name: str) -> Workload:
    """A server workload the stack runs; the test skips when its component is off."""
    for workload in expected(cluster.config):
        if workload.name == name:
            return workload
    pytest.skip(f"stack {cluster.stack} runs no {name} in the cluster")


def names(cluster: Cluster, kind: str) -> list[str]:
    return sorted(
        o["metadata"]["name"] for o in cluster.get(kind, "-n", cluster.namespace)["items"]
    )


def credentials(cluster: Cluster) -> set[str]:
    """Every credential value of the platform's Secrets (platform and model namespaces)."""
    spaces = [cluster.namespace]
    if cluster.config.kserve is not None:
        spaces.append(cluster.config.kserve.model_namespace)
    values = set()
    for space in spaces:
        for secret in cluster.get("secrets", "-n", space, "-l", PART_OF)["items"]:
            data = secret.get("data", {})
            values |= {
                base64.b64decode(v).decode() for k, v in data.items() if CREDENTIAL.search(k)
            }
    # Short values (a user name, a port) are not secrets and would match by chance.
    return {v for v in values if len(v) >= 8}


@pytest.fixture(scope="module")
def declared(cluster: Cluster) -> render.Rendering:
    """The stack as the program declares it (rendered under mocks, secrets as placeholders)."""
    return render.render_stack(cluster.stack)


def template(declared: render.Rendering, kind: str, name: str) -> dict[str, Any]:
    return declared.find(kind, name).manifest()["spec"]["template"]  # type: ignore[no-any-return]


# Objects, in both modes.


def test_workloads_are_ready_and_jobs_complete(cluster: Cluster) -> None:
    wanted = expected(cluster.config)
    for kind in ("StatefulSet", "Deployment", "CronJob"):
        assert names(cluster, kind.lower() + "s") == sorted(
            w.name for w in wanted if w.kind == kind
        )
    ns = cluster.namespace
    for item in cluster.get("statefulsets,deployments", "-n", ns)["items"]:
        ready = item["status"].get("readyReplicas")
        assert ready == item["spec"]["replicas"], f"{item['metadata']['name']}: {ready} ready"

    def scheduled(job: dict[str, Any]) -> bool:
        return any(o["kind"] == "CronJob" for o in job["metadata"].get("ownerReferences", []))

    items = cluster.get("jobs", "-n", ns)["items"]
    # A CronJob (materialization, backups) may already have started a run: its own Jobs.
    cron_jobs = {w.name for w in wanted if w.kind == "CronJob"}
    assert all(
        j["metadata"]["ownerReferences"][0]["name"] in cron_jobs for j in items if scheduled(j)
    )
    jobs = [j for j in items if not scheduled(j)]
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(
        w.name for w in wanted if w.kind == "Job"
    )
    assert all(j["status"].get("succeeded") == 1 for j in jobs)


def test_namespaces_enforce_their_pod_security_standard(cluster: Cluster) -> None:
    """The platform's namespace enforces restricted; the model namespace baseline (KServe
    injects its storage initializer), warning at restricted."""
    enforced = {cluster.namespace: "restricted"}
    if cluster.config.kserve is not None:
        enforced[cluster.config.kserve.model_namespace] = "baseline"
    for name, level in enforced.items():
        labels = cluster.get("namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == level, name
        assert labels["pod-security.kubernetes.io/warn"] == "restricted", name
        assert labels["pod-security.kubernetes.io/audit"] == "restricted", name


def test_no_credential_appears_in_a_configmap_or_a_pod_spec(cluster: Cluster) -> None:
    """Secrets reach pods through secretKeyRef and Secret volumes only: no credential of the
    platform's Secrets is in any ConfigMap of the cluster or in the platform's pod specs."""
    secrets = credentials(cluster)
    assert secrets, "the platform's Secrets hold no credential"
    configmaps = json.dumps(cluster.get("configmaps", "-A"))
    pods = json.dumps(cluster.get("pods", "-n", cluster.namespace)["items"])
    for value in secrets:
        assert value not in configmaps, "a credential is in a ConfigMap"
        assert value not in pods, "a credential is in a pod spec"


def test_model_namespace_gets_the_storage_credentials(cluster: Cluster) -> None:
    if cluster.config.kserve is None or cluster.config.object_store is None:
        pytest.skip(f"stack {cluster.stack} has no KServe or no object store")
    models = cluster.config.kserve.model_namespace
    account = cluster.get("serviceaccount", "kserve-models", "-n", models)
    assert account["secrets"] == [{"name": "kserve-s3"}]
    secret = cluster.get("secret", "kserve-s3", "-n", models)
    endpoint = secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    if cluster.config.object_store.external is None:
        assert endpoint == f"seaweedfs.{cluster.namespace}.svc.cluster.local:8333"
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for model_key, platform_key in (
        ("AWS_ACCESS_KEY_ID", "access-key-id"),
        ("AWS_SECRET_ACCESS_KEY", "secret-access-key"),
    ):
        assert cluster.secret_value("kserve-s3", model_key, models) == cluster.secret_value(
            "object-store", platform_key
        ), model_key


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    if obj["kind"] == "Pod":
        return obj["spec"]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _workload_of(pod: dict[str, Any]) -> str:
    """The controller a pod belongs to: a StatefulSet, Job or CronJob name, a Deployment's
    name for the pods of its ReplicaSets; a pod of no controller is its own workload."""
    owners = pod["metadata"].get("ownerReferences") or [pod["metadata"] | {"kind": "Pod"}]
    owner = owners[0]
    if owner["kind"] == "ReplicaSet" or re.search(r"-\d+$", owner["name"]):
        return str(owner["name"].rsplit("-", 1)[0])
    return str(owner["name"])


def test_every_pod_runs_non_root_as_its_declared_uid(cluster: Cluster) -> None:
    """Each controller's pod template and each pod: non-root, the UID of infra/versions.py,
    no privilege escalation, every capability dropped, RuntimeDefault seccomp."""
    uids = {w.name: w.uid for w in expected(cluster.config)}
    ns = cluster.namespace
    controllers = cluster.get("statefulsets,deployments,jobs,cronjobs", "-n", ns)["items"]
    pods = cluster.get("pods", "-n", ns)["items"]
    checked = []
    for obj in [*controllers, *pods]:
        if obj["kind"] == "Pod":
            name = _workload_of(obj)
        elif obj["kind"] == "Job" and obj["metadata"].get("ownerReferences"):
            name = obj["metadata"]["ownerReferences"][0]["name"]
        else:
            name = obj["metadata"]["name"]
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert name in uids, f"{where}: no declared UID for workload {name}"
        spec = _pod_spec(obj)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert (context["runAsUser"], context["runAsGroup"]) == (uids[name], uids[name]), where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, f"{where}/{container['name']}"
            assert own["capabilities"] == {"drop": ["ALL"]}, f"{where}/{container['name']}"
            assert own.get("runAsUser", uids[name]) == uids[name], f"{where}/{container['name']}"
        checked.append(name)
    assert set(checked) == set(uids)


def test_each_service_routes_to_ready_pods_on_its_named_ports(cluster: Cluster) -> None:
    """Every Service of the platform has ready endpoints that carry every port it names (a
    named port resolves only on pods that declare it). The component's Job pods match the
    selector too; they declare no such port, land in a slice without ports, get no traffic."""
    ns = cluster.namespace
    services = cluster.get("services", "-n", ns, "-l", PART_OF)["items"]
    assert services
    for service in services:
        name = service["metadata"]["name"]
        ports = {p["name"] for p in service["spec"]["ports"]}
        slices = cluster.get(
            "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={name}"
        )["items"]
        routed = [
            e["targetRef"]["name"]
            for s in slices
            if {p["name"] for p in s.get("ports") or []} == ports
            for e in s.get("endpoints") or []
            if e.get("conditions", {}).get("ready")
        ]
        assert routed, f"service {name}: no ready endpoint with the ports {sorted(ports)}"


# Inside the running containers: real clusters only.


def _status_and_sockets(cluster: Cluster, pod: str, container: str) -> tuple[str, str]:
    host = cluster.host(pod, container)
    # A process may exit between the glob and the read: its file is then missing.
    status = host.run("cat /proc/[0-9]*/status 2>/dev/null; true").stdout
    sockets = host.run("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true").stdout
    return status, sockets


@pytest.mark.containers
@pytest.mark.parametrize("name", SERVERS)
def test_processes_run_as_the_declared_uid_and_listen_on_the_declared_ports(
    cluster: Cluster, declared: render.Rendering, name: str
) -> None:
    """Read inside the pod's first container (each has a shell): every process of that
    container has the declared UID, and every declared port of the pod (its sidecars' too:
    one network namespace) listens on an address other pods reach, not loopback only."""
    workload = server(cluster, name)
    spec = template(declared, workload.kind, name)["spec"]
    first = spec["containers"][0]["name"]
    ports = {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
    for pod in cluster.pods(name):
        status, sockets = _status_and_sockets(cluster, pod, first)
        found = processes(status)
        assert found, f"{pod}: no process read"
        for process in found:
            assert set(process.uids) == {workload.uid}, f"{pod}: {process}"
        listening = listeners(sockets)
        for port in sorted(ports):
            assert port in listening, f"{pod}: nothing listens on {port}"
            assert reachable_from_other_pods(listening[port]), f"{pod}: {port} on loopback"


# The servers that read config files mounted from ConfigMaps.
CONFIGURED = ("redis", "flyte", "feast", "prometheus", "grafana")


def _mounted_configmap_files(
    spec: dict[str, Any], container: dict[str, Any]
) -> list[tuple[str, str, str | None]]:
    """(path in the container, ConfigMap, key) of every mount from a ConfigMap; a key of
    None mounts every key of the ConfigMap as a file in the path."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files = []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        sources = volume.get("projected", {}).get("sources", [volume])
        for source in (s["configMap"] for s in sources if "configMap" in s):
            if "subPath" in mount:
                files.append((mount["mountPath"], source["name"], mount["subPath"]))
            elif source.get("items"):
                files += [
                    (f"{mount['mountPath']}/{i['path']}", source["name"], i["key"])
                    for i in source["items"]
                ]
            else:
                files.append((mount["mountPath"], source["name"], None))
    return files


@pytest.mark.containers
@pytest.mark.parametrize("name", CONFIGURED)
def test_config_files_are_in_place_and_hold_no_credential(cluster: Cluster, name: str) -> None:
    """Every file a server's container mounts from a ConfigMap (flyte-binary's config.d and
    cluster-resource templates, prometheus.yaml and its rules, Grafana's provisioning and
    dashboards, redis.conf, feature_store.yaml) is there with the ConfigMap's content, and no
    credential of the platform's Secrets is in it. Read with testinfra in the container (each
    of these images has a shell); files from Secrets hold credentials by design."""
    server(cluster, name)
    secrets = credentials(cluster)
    pod = cluster.get("pod", cluster.pods(name)[0], "-n", cluster.namespace)
    container = pod["spec"]["containers"][0]
    host = cluster.host(pod["metadata"]["name"], container["name"])
    mounted = _mounted_configmap_files(pod["spec"], container)
    assert mounted, f"{name}: no config file mounted"
    for path, configmap, key in mounted:
        found = cluster.get("configmap", configmap, "-n", cluster.namespace)
        # The service account's CA bundle (kube-root-ca.crt) is the cluster's, not ours.
        if found["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "mlops-platform":
            continue
        data = found["data"]
        for one in [key] if key is not None else sorted(data):
            file_path = path if key is not None else f"{path}/{one}"
            file = host.file(file_path)
            assert file.is_file, f"{name}: {file_path} missing"
            content = file.content_string
            assert content == data[one], f"{name}: {file_path} differs from {configmap}"
            assert not any(s in content for s in secrets), f"{file_path} holds a credential"


def _in_cluster(cluster: Cluster, key: str) -> Any:
    """A component section that runs in the cluster; the test skips otherwise."""
    part = section(cluster.config, key)
    if part is None or getattr(part, "external", None) is not None:
        pytest.skip(f"stack {cluster.stack} runs no {key} server in the cluster")
    return part


@pytest.mark.containers
def test_each_postgres_login_reaches_only_its_own_database(cluster: Cluster) -> None:
    """psql in the postgres container, over TCP (password auth, not the local socket): each
    consumer's login, with its password from its Secret, opens its own database, is refused
    every other consumer's, and a wrong password is refused."""
    part = _in_cluster(cluster, "postgres")
    host = cluster.host(cluster.pods("postgres")[0], "postgres")
    logins = sorted(part.consumer_passwords)
    passwords = {db: cluster.secret_value(f"postgres-{db}", "password") for db in logins}

    def connect(user: str, password: str, database: str) -> tuple[int, str, str]:
        result = host.run(
            "env PGPASSWORD=%s PGCONNECT_TIMEOUT=10 psql --no-psqlrc -h 127.0.0.1 -U %s -d %s "
            "-Atc 'select current_user, current_database()'",
            password,
            user,
            database,
        )
        return result.rc, result.stdout.strip(), result.stderr

    for user in logins:
        for database in logins:
            rc, out, err = connect(user, passwords[user], database)
            if database == user:
                assert (rc, out) == (0, f"{user}|{user}"), f"{user} on {database}: {err}"
            else:
                assert rc != 0, f"{user} opened {database}"
                assert "CONNECT" in err or "permission denied" in err, err
        rc, _, err = connect(user, passwords[user] + "-wrong", user)
        assert rc != 0 and "password authentication failed" in err, f"{user}: {err}"


@pytest.mark.containers
def test_redis_refuses_unauthenticated_commands_and_accepts_the_password(
    cluster: Cluster,
) -> None:
    """redis-cli in the redis container (its REDISCLI_AUTH removed): NOAUTH without a
    password, WRONGPASS with a wrong one, PONG with the Secret's; the password file the
    server includes is private to the redis user."""
    _in_cluster(cluster, "redis")
    host = cluster.host(cluster.pods("redis")[0], "redis")
    password = cluster.secret_value("redis", "password")
    ping = "redis-cli -e -h 127.0.0.1 -p 6379 ping"
    anonymous = host.run(f"env -u REDISCLI_AUTH {ping}")
    assert anonymous.rc != 0 and "NOAUTH" in anonymous.stdout + anonymous.stderr
    wrong = host.run(f"env REDISCLI_AUTH=%s {ping}", password + "-wrong")
    assert wrong.rc != 0 and "WRONGPASS" in wrong.stdout + wrong.stderr
    right = host.run(f"env REDISCLI_AUTH=%s {ping}", password)
    assert (right.rc, right.stdout.strip()) == (0, "PONG"), right.stderr
    auth = host.file("/run/redis/auth.conf")
    assert (auth.mode, auth.uid) == (0o600, versions.REDIS_UID)


@pytest.mark.containers
def test_the_buckets_exist_and_anonymous_s3_is_refused(cluster: Cluster) -> None:
    """In the seaweedfs container (alpine): `weed shell` lists every configured bucket, as
    the bucket Job does, and an unsigned S3 request gets 403."""
    part = _in_cluster(cluster, "objectStore")
    host = cluster.host(cluster.pods("seaweedfs")[0], "seaweedfs")
    # HOME on the memory volume: weed shell keeps a history file there.
    listing = host.run(
        "echo s3.bucket.list | HOME=/tmp timeout 60 weed shell -master=127.0.0.1:9333"
    )
    assert listing.rc == 0, listing.stderr
    for bucket in dict(part.buckets).values():
        assert re.search(rf"^\s*{re.escape(bucket)}(\s|$)", listing.stdout, re.M), (
            f"bucket {bucket} missing: {listing.stdout}"
        )
    anonymous = host.run("wget -q -O /dev/null http://127.0.0.1:8333/")
    assert anonymous.rc != 0 and "403" in anonymous.stderr, anonymous.stderr


HEALTH = {
    "mlflow": ("mlflow", 5000, "/health"),
    "flyte": ("flyte-http", 8088, "/healthcheck"),
    "feast": ("feast", 6566, "/health"),
}


@pytest.mark.containers
@pytest.mark.parametrize("name", sorted(HEALTH))
def test_the_health_endpoint_answers(cluster: Cluster, name: str) -> None:
    """Over `kubectl port-forward` to the Service, the path the readiness probe uses."""
    server(cluster, name)
    service, port, path = HEALTH[name]
    with cluster.forward(service, port) as local:
        response = http_get(f"http://127.0.0.1:{local}{path}")
    assert response.status == 200, response.body


@pytest.mark.containers
def test_mlflow_api_needs_the_admin_login(cluster: Cluster) -> None:
    """Over port-forward: the tracking API refuses anonymous requests and accepts the admin
    password from the mlflow Secret."""
    server(cluster, "mlflow")
    password = cluster.secret_value("mlflow", "admin-password")
    with cluster.forward("mlflow", 5000) as local:
        url = f"http://127.0.0.1:{local}/api/2.0/mlflow/experiments/search?max_results=1"
        assert http_get(url).status == 401
        assert http_get(url, "admin", password + "-wrong").status == 401
        admin = http_get(url, "admin", password)
    assert admin.status == 200, admin.body


def _declared_jobs(declared: render.Rendering) -> dict[str, bool]:
    """Job name -> whether it must have a target, from the rendered prometheus.yaml: static
    and node jobs must; pod discovery (inference) has none until a model is deployed."""
    text = declared.find("ConfigMap", "prometheus-config").manifest()["data"]["prometheus.yaml"]
    jobs = {}
    for job in yaml.safe_load(text)["scrape_configs"]:
        roles = [c["role"] for c in job.get("kubernetes_sd_configs", [])]
        jobs[job["job_name"]] = "pod" not in roles
    return jobs


@pytest.mark.containers
def test_prometheus_scrapes_every_declared_target(
    cluster: Cluster, declared: render.Rendering
) -> None:
    """Over port-forward, /api/v1/targets: every job of the rendered config has its targets
    and each is up (waiting out the first scrapes, every 30 s)."""
    server(cluster, "prometheus")
    jobs = _declared_jobs(declared)
    deadline = time.monotonic() + 180
    with cluster.forward("prometheus", 9090) as local:
        while True:
            response = http_get(f"http://127.0.0.1:{local}/api/v1/targets?state=active")
            assert response.status == 200, response.body
            targets = response.json()["data"]["activeTargets"]
            health = {
                f"{t['labels']['job']} {t['scrapeUrl']}": (t["health"], t["lastError"])
                for t in targets
            }
            found = {t["labels"]["job"] for t in targets}
            missing = sorted(j for j, needed in jobs.items() if needed and j not in found)
            down = {k: v for k, v in health.items() if v[0] != "up"}
            if (not missing and not down) or time.monotonic() > deadline:
                break
            time.sleep(10)
    assert not missing, f"jobs without a target: {missing}"
    assert not down, f"targets not up: {down}"
    assert found <= set(jobs), f"undeclared jobs: {found - set(jobs)}"


@pytest.mark.containers
def test_grafana_has_its_datasource_and_dashboards(
    cluster: Cluster, declared: render.Rendering
) -> None:
    """Over port-forward, Grafana's HTTP API with the admin password from its Secret: the
    Prometheus datasource (and it reaches Prometheus), every dashboard of infra/dashboards,
    and no anonymous access."""
    server(cluster, "grafana")
    password = cluster.secret_value("grafana", "admin-password")
    boards = declared.find("ConfigMap", "grafana-dashboards").manifest()["data"]
    uids = {json.loads(text)["uid"] for text in boards.values()}
    with cluster.forward("grafana", 3000) as local:
        api = f"http://127.0.0.1:{local}/api"
        assert http_get(f"{api}/datasources").status == 401
        sources = http_get(f"{api}/datasources", "admin", password)
        assert sources.status == 200, sources.body
        assert [(d["uid"], d["type"], d["url"]) for d in sources.json()] == [
            (
                "prometheus",
                "prometheus",
                f"http://prometheus.{cluster.namespace}.svc.cluster.local:9090",
            )
        ]
        check = http_get(f"{api}/datasources/uid/prometheus/health", "admin", password)
        assert check.status == 200 and check.json()["status"] == "OK", check.body
        search = http_get(f"{api}/search?type=dash-db", "admin", password)
    assert search.status == 200, search.body
    assert {d["uid"] for d in search.json()} == uids


def test_flyte_prepares_every_project_domain_namespace(cluster: Cluster) -> None:
    """The platform creates a namespace per project and domain, enforcing baseline, with the
    task Secret and a Role for Flyte (Flyte's cluster-resource manager is off)."""
    part = _in_cluster(cluster, "flyte")
    wanted = [f"{p}-{d}" for p in part.projects for d in part.domains]
    for name in wanted:
        labels = cluster.get("namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline", name
        assert cluster.kubectl("get", "secret", "flyte-task-storage", "-n", name).returncode == 0
        account = f"system:serviceaccount:{cluster.namespace}:flyte"
        for verb, resource, allowed in (
            ("create", "pods", "yes"),
            ("create", "secrets", "no"),
            ("get", "secrets", "no"),
        ):
            answer = cluster.kubectl(
                "auth", "can-i", verb, resource, "-n", name, "--as", account
            ).stdout.strip()
            assert answer == allowed, (name, verb, resource, answer)
    outside = cluster.kubectl(
        "auth",
        "can-i",
        "create",
        "pods",
        "-n",
        "default",
        "--as",
        f"system:serviceaccount:{cluster.namespace}:flyte",
    ).stdout.strip()
    assert outside == "no"


def _call(url: str, headers: dict[str, str], data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.mark.containers
def test_flyte_refuses_anonymous_requests_and_accepts_a_client_token(cluster: Cluster) -> None:
    """Over port-forward: the admin API answers 401 without a token; the `mlops-ci` client's
    credentials (the generated client config's login) get a token from Flyte's own
    authorization server, which the API accepts."""
    _in_cluster(cluster, "flyte")
    secret = cluster.secret_value("flyte-auth", "mlops_ci_client_secret")
    with cluster.forward("flyte-http", 8088) as local:
        base = f"http://127.0.0.1:{local}"
        status, _ = _call(f"{base}/api/v1/projects", {})
        assert status == 401
        basic = base64.b64encode(f"mlops-ci:{secret}-wrong".encode()).decode()
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "all"})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _ = _call(
            f"{base}/oauth2/token", {**headers, "Authorization": f"Basic {basic}"}, form.encode()
        )
        assert status == 401
        basic = base64.b64encode(f"mlops-ci:{secret}".encode()).decode()
        status, body = _call(
            f"{base}/oauth2/token", {**headers, "Authorization": f"Basic {basic}"}, form.encode()
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, body = _call(
            f"{base}/api/v1/projects",
            {"Authorization": f"Bearer {token}", "flyte-authorization": f"Bearer {token}"},
        )
    assert status == 200, body
    assert "projects" in json.loads(body)
