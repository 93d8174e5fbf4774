"""The fraud transformer: a KServe model that turns a transaction into the model's inputs.

    POST /v1/models/<name>:predict
    {"instances": [{"customer_id": 1042, "merchant_id": 5007, "amount": 129.5}]}
    -> {"predictions": [{"fraud_probability": 0.031, "model_version": "3"}]}

For each instance it reads the `fraud_model_v1` features from the online store through the
Feast SDK (in process: one Redis round trip, no extra hop through the feature server), fills
what is missing as training did (workloads.model_inputs), and calls the predictor over the
V2 protocol with one `[n, 11]` FP64 tensor (the runtime of workloads.serving.runtime). A
malformed body is a 400 naming the field; a feature-store or predictor failure is a 500 that
says which, never a score.

Nothing blocks the event loop: the feature read is Feast's async one, so concurrent requests
overlap their Redis round trips instead of queueing behind each other.

Request, feature-fetch and predictor latency are Prometheus histograms with a `status` label,
served on the HTTP port's /metrics with KServe's own.

With MLOPS_PREDICTION_LOG_URI set, every scored instance is also logged, with the features it
was scored on (workloads.monitoring.prediction_log): queued in this process, written by a
process of its own, never failing a request. A caller's `x-request-id` header becomes the
records' request id (one is generated without).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
from kserve import Model, ModelServer
from kserve import model_server as kserve_server
from kserve.errors import InferenceError, InvalidInput
from prometheus_client import Histogram

from workloads.model_inputs import FEATURE_SERVICE, FEATURES, REQUEST_FIELDS, model_inputs
from workloads.monitoring.log_writer import WriterProcess
from workloads.monitoring.prediction_log import LogSettings, PredictionLogger

log = logging.getLogger(__name__)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REQUEST_SECONDS = Histogram(
    "transformer_request_duration_seconds",
    "Time to answer a request, from body to scores",
    ["model_name", "status"],
    buckets=BUCKETS,
)
FEATURE_SECONDS = Histogram(
    "transformer_feature_fetch_duration_seconds",
    "Time to read a request's online features",
    ["model_name", "status"],
    buckets=BUCKETS,
)
PREDICTOR_SECONDS = Histogram(
    "transformer_predictor_duration_seconds",
    "Time of the call to the predictor",
    ["model_name", "status"],
    buckets=BUCKETS,
)
# Status label values: what a request ended with.
OK, BAD_REQUEST, FEATURE_STORE_ERROR, PREDICTOR_ERROR = (
    "ok",
    "bad_request",
    "feature_store_error",
    "predictor_error",
)
# The predictor's one input (workloads.serving.runtime): its name and the columns it names.
PREDICTOR_INPUT = "inputs"
PREDICTOR_COLUMNS = ",".join(FEATURES)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# MLServer's uvicorn closes a connection idle for 5 s; dropping ours at 4 s keeps a request
# from going out on a connection the predictor is closing (a 500 on intermittent traffic).
PREDICTOR_KEEPALIVE_SECONDS = 4.0


@dataclass
class Scored:
    """What one request's stages learn about it, for its log records."""

    request_id: str
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    inputs: np.ndarray | None = None


# The request being answered: each request runs in its own task, and its stages share it.
SCORED: ContextVar[Scored | None] = ContextVar("scored", default=None)


class FeatureStoreError(InferenceError):
    pass


class PredictorError(InferenceError):
    pass


@contextmanager
def timed(histogram: Histogram, model_name: str, failure: str) -> Iterator[None]:
    start = time.perf_counter()
    status = failure
    try:
        yield
        status = OK
    finally:
        histogram.labels(model_name, status).observe(time.perf_counter() - start)


def parse_instances(body: Any) -> list[dict[str, Any]]:
    """The transactions of a V1 body, each field checked; InvalidInput names the first bad
    one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("instances"), list):
        raise InvalidInput('the body must be a JSON object with an "instances" list')
    instances = body["instances"]
    if not instances:
        raise InvalidInput('"instances" is empty: send at least one transaction')
    parsed = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise InvalidInput(f"instances[{i}] must be an object with {', '.join(REQUEST_FIELDS)}")
        row: dict[str, Any] = {}
        for field, kind in REQUEST_FIELDS.items():
            value = instance.get(field)
            checked = _integer(value) if kind is int else _number(value)
            if checked is None:
                allowed = (
                    f"an integer from {INT64_MIN} to {INT64_MAX}"
                    if kind is int
                    else "a finite number"
                )
                raise InvalidInput(f"instances[{i}].{field} must be {allowed}, got {value!r}")
            row[field] = checked
        parsed.append(row)
    return parsed


def _number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    """A JSON integer (3 or 3.0, not 3.5) within Feast's INT64 entity keys; None otherwise."""
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def predictor_request(inputs: np.ndarray) -> bytes:
    """The V2 request body: the model's inputs as one row-major FP64 tensor."""
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": PREDICTOR_INPUT,
                    "shape": list(inputs.shape),
                    "datatype": "FP64",
                    "data": inputs.ravel(),
                    "parameters": {"columns": PREDICTOR_COLUMNS},
                }
            ]
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


class FraudTransformer(Model):
    def __init__(
        self,
        name: str,
        predictor_host: str,
        feature_service: str,
        timeout: float,
        prediction_log: PredictionLogger | None = None,
    ):
        super().__init__(name)
        self.predictor_url = f"http://{predictor_host}/v2/models/{name}/infer"
        self.feature_service_name = feature_service
        self.timeout = timeout
        self.prediction_log = prediction_log
        self.store: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.started = False

    def load(self) -> bool:
        from workloads.training.data import feature_store

        self.store = feature_store()
        self.feature_service = self.store.get_feature_service(self.feature_service_name)
        self.warm_up()
        self.ready = True
        return self.ready

    def warm_up(self) -> None:
        """One online read before the model reports ready. Feast's first read imports every
        online store module it knows to check versioned-read support, about 0.35 s with the
        event loop held (benchmarks/soak.py), which the first caller would otherwise wait for.
        A store that cannot answer yet is logged, not fatal: requests then fail with a 500
        naming it, as they would later."""
        row = {field: kind(0) for field, kind in REQUEST_FIELDS.items()}
        try:
            self.store.get_online_features(features=self.feature_service, entity_rows=[row])
        except Exception as error:
            log.warning("the warm-up read from the online feature store failed: %s", error)

    async def __call__(self, body: Any, headers: Any = None, verb: Any = None) -> Any:
        if not self.started:
            # A full garbage collection walks every object start-up left (150 ms here, and
            # every request in flight waits): frozen, it walks only what requests leave.
            gc.freeze()
            self.started = True
        start = time.perf_counter()
        status = "error"
        request_id = (headers or {}).get("x-request-id") or uuid.uuid4().hex
        token = SCORED.set(Scored(request_id))
        try:
            if verb is None:
                result = await super().__call__(body, headers)
            else:
                result = await super().__call__(body, headers, verb)
            status = OK
            return result
        except InvalidInput:
            status = BAD_REQUEST
            raise
        except FeatureStoreError:
            status = FEATURE_STORE_ERROR
            raise
        except PredictorError:
            status = PREDICTOR_ERROR
            raise
        finally:
            SCORED.reset(token)
            REQUEST_SECONDS.labels(self.name, status).observe(time.perf_counter() - start)

    async def preprocess(self, payload: Any, headers: Any = None) -> bytes:
        rows = parse_instances(payload)
        with timed(FEATURE_SECONDS, self.name, FEATURE_STORE_ERROR):
            try:
                # Feast's async read (redis.asyncio): one pipeline for every row, awaited.
                response = await self.store.get_online_features_async(
                    features=self.feature_service, entity_rows=rows
                )
                features = response.to_dict()
            except Exception as error:
                raise FeatureStoreError(f"the online feature store failed: {error}") from error
        inputs = model_inputs(features)
        scored = SCORED.get()
        if scored is not None:
            scored.requests, scored.inputs = rows, inputs
        return predictor_request(inputs)

    def validate(self, payload: Any) -> Any:
        # The payload is already the predictor's request body (bytes): KServe's checks of a
        # dict body do not apply.
        return payload

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        if self.session is None:
            # aiohttp rather than httpx: 1.3 to 1.8 ms less CPU per transaction here.
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=PREDICTOR_KEEPALIVE_SECONDS),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "application/json"},
            )
        with timed(PREDICTOR_SECONDS, self.name, PREDICTOR_ERROR):
            try:
                async with self.session.post(self.predictor_url, data=payload) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PredictorError(
                    f"the predictor at {self.predictor_url} failed: {error!r}"
                ) from error
            if status != 200:
                raise PredictorError(f"the predictor answered {status}: {body[:300]!r}")
            return orjson.loads(body)

    def postprocess(self, result: Any, headers: Any = None, response_headers: Any = None) -> Any:
        outputs = result.get("outputs") or []
        if len(outputs) != 1:
            raise PredictorError(f"the predictor sent {len(outputs)} outputs, expected one")
        output = outputs[0]
        data, shape = output["data"], output["shape"]
        # predict_proba: one row per instance, the positive class last.
        width = shape[1] if len(shape) == 2 else 1
        probabilities = data[width - 1 :: width]
        version = result.get("model_version")
        self.log_predictions(probabilities, version)
        return {
            "predictions": [
                {"fraud_probability": float(p), "model_version": version} for p in probabilities
            ]
        }

    def log_predictions(self, probabilities: list[float], version: Any) -> None:
        """Queues the request for the prediction log (which never blocks nor raises)."""
        scored = SCORED.get()
        if self.prediction_log is None or scored is None or scored.inputs is None:
            return
        self.prediction_log.log_request(
            scored.request_id, version, scored.requests, scored.inputs, probabilities
        )


def prediction_logger(model_name: str) -> PredictionLogger | None:
    """The prediction log MLOPS_PREDICTION_LOG_URI names, written by a process of its own."""
    settings = LogSettings.from_env()
    if settings is None:
        log.warning("MLOPS_PREDICTION_LOG_URI is not set: predictions are not logged")
        return None
    return PredictionLogger(model_name, settings, writer=WriterProcess(settings.uri))


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_server.parser])
    parser.add_argument("--feature_service", default=FEATURE_SERVICE)
    args, _ = parser.parse_known_args()
    if not args.predictor_host:
        parser.error("--predictor_host is required (KServe passes it to a transformer)")
    model = FraudTransformer(
        args.model_name,
        args.predictor_host,
        args.feature_service,
        float(args.predictor_request_timeout_seconds),
        prediction_logger(args.model_name),
    )
    model.load()
    server = ModelServer()
    # Per request, KServe logs two timing lines and uvicorn an access line: more event-loop
    # time than parsing the request. Warnings still log; the histograms count every request.
    for per_request in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(per_request).setLevel(logging.WARNING)
    try:
        server.start([model])
    finally:
        if model.prediction_log is not None:
            model.prediction_log.close()


if __name__ == "__main__":
    main()
