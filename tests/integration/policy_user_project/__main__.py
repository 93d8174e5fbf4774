"""A user's own Pulumi program beside the platform: one Deployment in the platform's namespace
with an unpinned image and no resources, which the platform's policy pack must refuse."""

import pulumi
import pulumi_kubernetes as k8s

namespace = pulumi.Config().require("namespace")
labels = {"app": "user-app"}
k8s.apps.v1.Deployment(
    "user-app",
    metadata={"name": "user-app", "namespace": namespace},
    spec={
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
        },
    },
)
