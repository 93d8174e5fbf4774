"""The serving runtimes the kserve-runtime-configs chart v0.20.0 installs, for checking the
platform's values against.

Source (kserve/kserve at tag v0.20.0): charts/kserve-runtime-configs/files/runtimes/
clusterservingruntimes-patch.yaml, where each ClusterServingRuntime's `disabled` reads
`.Values.kserve.servingruntime.<key>.disabled`; the multinode Hugging Face runtime reads the
`huggingfaceserver` key (no `huggingfaceserver_multinode.disabled` is read).
"""

from __future__ import annotations

CHART_VERSION = "v0.20.0"

# ClusterServingRuntime name -> the values key whose `disabled` switches it.
RUNTIME_SWITCHES = {
    "kserve-autogluonserver": "autogluonserver",
    "kserve-huggingfaceserver": "huggingfaceserver",
    "kserve-huggingfaceserver-multinode": "huggingfaceserver",
    "kserve-lgbserver": "lgbserver",
    "kserve-mlserver": "mlserver",
    "kserve-paddleserver": "paddleserver",
    "kserve-pmmlserver": "pmmlserver",
    "kserve-predictiveserver": "predictiveserver",
    "kserve-sklearnserver": "sklearnserver",
    "kserve-tensorflow-serving": "tensorflow",
    "kserve-torchserve": "torchserve",
    "kserve-tritonserver": "tritonserver",
    "kserve-vllmserver": "vllmserver",
    "kserve-xgbserver": "xgbserver",
}
