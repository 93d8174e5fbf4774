"""The GitHub CLI (`gh`) for `mlops pipeline`: a repository's deployment environments and their
secrets. Secret values go to `gh secret set` on standard input, never on its command line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from mlops.errors import UserError
from mlops.paths import ROOT

INSTALL = "install the GitHub CLI (https://cli.github.com) and log in: gh auth login"
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def find() -> str | None:
    """The `gh` on PATH, None when there is none or it is not logged in (`gh auth status`)."""
    found = shutil.which("gh")
    if found is None:
        return None
    status = subprocess.run([found, "auth", "status"], capture_output=True, text=True, check=False)
    return found if status.returncode == 0 else None


def missing_reason() -> str:
    """Why `find` found none, as the start of a message."""
    if shutil.which("gh") is None:
        return "the GitHub CLI (gh) is not on PATH"
    return "the GitHub CLI is not logged in (gh auth status failed)"


@dataclass(frozen=True)
class Environment:
    """A deployment environment as GET repos/{owner}/{repo}/environments/{name} returns it."""

    name: str
    reviewers: tuple[str, ...]


@dataclass(frozen=True)
class GitHub:
    """`gh` against one repository (owner/name)."""

    gh: str
    repo: str

    def _run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.gh, *args], input=stdin, capture_output=True, text=True, check=False
        )

    def _check(self, *args: str, stdin: str | None = None) -> str:
        result = self._run(*args, stdin=stdin)
        if result.returncode != 0:
            # The arguments never hold a secret value: naming them is safe.
            raise UserError(f"gh {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def environment(self, name: str) -> Environment | None:
        """The environment, None when the repository has none of that name."""
        result = self._run("api", f"repos/{self.repo}/environments/{name}")
        if result.returncode != 0:
            if "HTTP 404" in result.stderr:
                return None
            raise UserError(
                f"gh api repos/{self.repo}/environments/{name}: {result.stderr.strip()}"
            )
        return Environment(name, reviewers_of(json.loads(result.stdout)))

    def create_environment(self, name: str) -> None:
        """PUT with no body: a new environment without protection rules."""
        self._check("api", "--method", "PUT", f"repos/{self.repo}/environments/{name}", "--silent")

    def secret_names(self, environment: str) -> set[str]:
        """The names of an environment's secrets (their values cannot be read back)."""
        out = self._check(
            "secret", "list", "--env", environment, "--repo", self.repo, "--json", "name"
        )
        return {item["name"] for item in json.loads(out or "[]")}

    def set_secret(self, environment: str, name: str, value: str) -> None:
        """`gh secret set`, the value on standard input."""
        self._check("secret", "set", name, "--env", environment, "--repo", self.repo, stdin=value)


def reviewers_of(environment: dict[str, Any]) -> tuple[str, ...]:
    """The logins (users) and slugs (teams) of an environment's required reviewers."""
    found = []
    for rule in environment.get("protection_rules") or []:
        if rule.get("type") != "required_reviewers":
            continue
        for reviewer in rule.get("reviewers") or []:
            who = reviewer.get("reviewer") or {}
            found.append(str(who.get("login") or who.get("slug") or who.get("name") or "?"))
    return tuple(found)


def repository(gh: str, given: str | None) -> str:
    """The repository: --repo as given, else the one this checkout's remote names."""
    if given is not None:
        if not REPO_NAME.match(given):
            raise UserError(f"--repo {given}: give the repository as owner/name")
        return given
    result = subprocess.run(
        [gh, "repo", "view", "--json", "nameWithOwner", "--jq", ".nameWithOwner"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    name = result.stdout.strip()
    if result.returncode != 0 or not REPO_NAME.match(name):
        raise UserError(
            "which GitHub repository? this checkout's remote names none that gh knows "
            f"({result.stderr.strip() or 'no answer'}): give it with --repo owner/name"
        )
    return name
