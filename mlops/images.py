"""The project's images (workloads/Dockerfile) under the references a stack names, built with
Docker and loaded into a kind cluster that cannot pull them from a registry. Pods pull them with
imagePullPolicy IfNotPresent, so a loaded image is used as is."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from mlops import console, stackfile, tools
from mlops.errors import UserError
from mlops.paths import ROOT


@dataclass(frozen=True)
class Image:
    target: str  # the workloads/Dockerfile target
    reference: str


def of_stack(stack: str) -> list[Image]:
    refs = stackfile.project_images(stackfile.read(stack))
    return [Image(target, reference) for target, reference in refs.items()]


def revision() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build(images: list[Image]) -> None:
    if not tools.docker_ready():
        raise UserError("no Docker engine answers (docker info): the images cannot be built here")
    for image in images:
        with console.step(f"building image {image.target} as {image.reference}"):
            result = subprocess.run(
                [
                    "docker",
                    "build",
                    "--file",
                    "workloads/Dockerfile",
                    "--target",
                    image.target,
                    "--build-arg",
                    f"REVISION={revision()}",
                    "--tag",
                    image.reference,
                    ".",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise UserError(f"docker build of {image.target} failed:\n{result.stderr[-3000:]}")


def load(images: list[Image], cluster: str) -> None:
    """Builds the images, then loads each into the kind cluster."""
    build(images)
    kind = tools.kind()
    for image in images:
        with console.step(f"loading {image.reference} into kind cluster {cluster}"):
            result = subprocess.run(
                [kind, "load", "docker-image", image.reference, "--name", cluster],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise UserError(f"kind load of {image.reference} failed: {result.stderr.strip()}")
