"""Model serving: traffic, errors and latency of every InferenceService in the model namespace,
and its predictor pods.

Two runtime families serve the platform's models and export different series: KServe's Python
runtimes (sklearn) time each predict call in the histogram `request_predict_seconds` without a
status; MLServer (MLflow models) counts REST requests by status code and times them in
`rest_server_request_duration_seconds`. Only MLServer's series can show errors. Transformers
built on workloads/serving/transformer.py time each request, its feature read and its
predictor call, with a `status` label.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from infra.dashboards.panels import (
    DashboardContext,
    Panel,
    Query,
    dashboard,
    equals,
    graph,
    matches,
    model,
    or_zero,
    quantile,
    rate,
    row,
    selector,
)

UID = "mlops-serving"
QUANTILES = (0.5, 0.95, 0.99)
# MLServer's inference routes (/v2/models/<name>[/versions/<version>]/infer, as templates or
# as requested): readiness and metadata calls are left out.
INFER_PATH = ".*/infer"
# The container KServe runs the model server in.
MODEL_CONTAINER = "kserve-container"
BY_SERVICE = ("inferenceservice",)


def build(context: DashboardContext) -> dict[str, Any]:
    (predictors,) = context.require("kserve").discovery
    namespace = predictors.namespace
    scope = (equals("job", predictors.job), equals("namespace", namespace))
    board = dashboard(
        UID,
        "MLOps platform / Model serving",
        f"Traffic, errors and latency of the InferenceServices in namespace {namespace}.",
        ["serving", "kserve"],
    )
    board.with_row(row("Traffic"))
    board.with_panel(requests(scope))
    board.with_panel(errors(scope, context.threshold("InferenceErrorBudgetBurn")))
    board.with_row(row("Latency"))
    board.with_panel(predict_latency(scope))
    board.with_panel(mlserver_latency(scope))
    board.with_row(row("Transformers"))
    board.with_panel(transformer_outcomes(scope))
    board.with_panel(transformer_latency(scope))
    board.with_row(row("Predictor pods"))
    board.with_panel(targets_up(scope))
    board.with_panel(pod_cpu(namespace))
    board.with_panel(pod_memory(namespace))
    return model(board)


def _per_service(expr: str) -> str:
    return f"sum by (inferenceservice) ({expr})"


def requests(scope: tuple[str, ...]) -> Panel:
    predicts = selector("request_predict_seconds_count", *scope)
    infers = selector("rest_server_requests_total", *scope, matches("path", INFER_PATH))
    return graph(
        "Requests per second",
        "Prediction requests per InferenceService: KServe runtimes count predict calls, "
        "MLServer its inference REST calls.",
        units.RequestsPerSecond,
        [
            Query(_per_service(rate(predicts)), "{{inferenceservice}} (KServe runtime)"),
            Query(_per_service(rate(infers)), "{{inferenceservice}} (MLServer)"),
        ],
        min_value=0,
    )


def errors(scope: tuple[str, ...], budget: float) -> Panel:
    infers = selector("rest_server_requests_total", *scope, matches("path", INFER_PATH))
    server_errors = selector(
        "rest_server_requests_total",
        *scope,
        matches("path", INFER_PATH),
        matches("status_code", "5.."),
    )
    all_requests = _per_service(rate(infers))
    failed = _per_service(rate(selector("model_infer_request_failure_total", *scope)))
    succeeded = _per_service(rate(selector("model_infer_request_success_total", *scope)))
    # A counter appears with its first increment: a service that never failed has no failure
    # series and one that never succeeded no success series; or_zero stands in for them.
    failures, successes = or_zero(failed, succeeded), or_zero(succeeded, failed)
    return graph(
        "Error ratio (MLServer)",
        "Share of inference requests answered with a 5xx status, and share of inferences the "
        "model failed, per InferenceService. KServe's Python runtimes report no status.",
        units.PercentUnit,
        [
            Query(
                f"{or_zero(_per_service(rate(server_errors)), all_requests)} / {all_requests}",
                "{{inferenceservice}} HTTP 5xx",
            ),
            Query(
                f"{failures} / ({successes} + {failures})",
                "{{inferenceservice}} inference failures",
            ),
        ],
        lines=[(budget, "red")],
        min_value=0,
    )


def _quantiles(buckets: str) -> list[Query]:
    return [
        Query(quantile(q, buckets, BY_SERVICE), f"{{{{inferenceservice}}}} p{round(q * 100)}")
        for q in QUANTILES
    ]


def predict_latency(scope: tuple[str, ...]) -> Panel:
    return graph(
        "Predict latency (KServe runtimes)",
        "Quantiles of the predict call's duration per InferenceService over 5 minutes.",
        units.Seconds,
        _quantiles(selector("request_predict_seconds_bucket", *scope)),
        min_value=0,
    )


def mlserver_latency(scope: tuple[str, ...]) -> Panel:
    buckets = selector(
        "rest_server_request_duration_seconds_bucket", *scope, matches("path", INFER_PATH)
    )
    return graph(
        "Inference latency (MLServer)",
        "Quantiles of the inference REST call's duration per InferenceService over 5 minutes.",
        units.Seconds,
        _quantiles(buckets),
        min_value=0,
    )


TRANSFORMER = "transformer_request_duration_seconds"
TRANSFORMER_STEPS = {
    "request": TRANSFORMER,
    "features": "transformer_feature_fetch_duration_seconds",
    "predictor": "transformer_predictor_duration_seconds",
}


def transformer_outcomes(scope: tuple[str, ...]) -> Panel:
    counts = selector(f"{TRANSFORMER}_count", *scope)
    return graph(
        "Transformer requests by outcome",
        "Requests per second per InferenceService and status: ok, bad_request (the caller's), "
        "feature_store_error, predictor_error or error.",
        units.RequestsPerSecond,
        [
            Query(
                f"sum by (inferenceservice, status) ({rate(counts)})",
                "{{inferenceservice}} {{status}}",
            )
        ],
        min_value=0,
    )


def transformer_latency(scope: tuple[str, ...]) -> Panel:
    return graph(
        "Transformer p99: request, feature read, predictor call",
        "99th percentile over 5 minutes of each step of a transformer's successful requests.",
        units.Seconds,
        [
            Query(
                quantile(
                    0.99, selector(f"{metric}_bucket", *scope, equals("status", "ok")), BY_SERVICE
                ),
                f"{{{{inferenceservice}}}} {step}",
            )
            for step, metric in TRANSFORMER_STEPS.items()
        ],
        min_value=0,
    )


def targets_up(scope: tuple[str, ...]) -> Panel:
    return graph(
        "Predictor pods scraped",
        "Predictor pods of each InferenceService that Prometheus scrapes successfully.",
        units.Short,
        [Query(_per_service(selector("up", *scope)), "{{inferenceservice}}")],
        width=8,
        min_value=0,
    )


def _model_container(namespace: str) -> tuple[str, ...]:
    return (equals("namespace", namespace), equals("container", MODEL_CONTAINER))


def pod_cpu(namespace: str) -> Panel:
    usage = selector("container_cpu_usage_seconds_total", *_model_container(namespace))
    return graph(
        "Model server CPU",
        "CPU cores the model server container of each predictor pod uses.",
        units.Short,
        [Query(f"sum by (pod) ({rate(usage)})", "{{pod}}")],
        width=8,
        min_value=0,
    )


def pod_memory(namespace: str) -> Panel:
    working_set = selector("container_memory_working_set_bytes", *_model_container(namespace))
    return graph(
        "Model server memory",
        "Working set memory of the model server container of each predictor pod.",
        units.BytesIEC,
        [Query(f"sum by (pod) ({working_set})", "{{pod}}")],
        width=8,
        min_value=0,
    )
