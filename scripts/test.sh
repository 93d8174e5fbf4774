#!/usr/bin/env bash
# The test command: lint and types, then pytest, preparing only what the selected tests need.
#
#   ./scripts/test.sh                          # everything (what CI runs)
#   ./scripts/test.sh -m unit                  # one tier: unit, contract, workloads, integration
#   ./scripts/test.sh tests/unit -k postgres   # arguments go to pytest
#
# Every run: .venv from uv.lock (setup.sh, with the workloads group) and the lints
# (scripts/lint.sh; MLOPS_LINT=0 skips them, as the CI tier jobs do: their lint job runs them).
# Then, for the tiers the pytest arguments select (tests/<tier>/):
#   unit         promtool and amtool (prometheus.sh: about 10 minutes the first time)
#   contract     the local servers (services.sh), Prometheus, Alertmanager and the Pushgateway
#   workloads    the local servers, .venv-serving (setup.sh --serving: the model server) and the
#                monitoring servers (the drift test)
#   integration  the control-plane toolchain with the KServe controller (toolchain.sh: about 30
#                minutes the first time; a toolchain that cannot be built fails the run) and
#                .venv-policy (setup.sh --policy: the policy pack)
# It installs no system package: when one is missing it stops and names the command that does.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
log() { printf '[test] %s\n' "$*" >&2; }

# .venv with every client group: the contract tests drive mlflow and the others.
./scripts/setup.sh

# Which tiers the arguments select: pytest collects without running, and every node id starts
# with tests/<tier>/. Selecting nothing is an error (a mistyped -k or -m would pass otherwise).
rc=0
collected="$(.venv/bin/python -m pytest --collect-only -q "$@" 2>&1)" || rc=$?
if ((rc == 5)); then
    log "no tests selected by: $*"
    exit 5
elif ((rc != 0)); then
    tail -n 30 <<<"$collected" >&2
    log "pytest could not collect the tests (exit $rc)"
    exit "$rc"
fi
tiers=" $(sed -n 's|^tests/\([a-z_]*\)/.*|\1|p' <<<"$collected" | sort -u | tr '\n' ' ')"
selected() { [[ "$tiers" == *" $1 "* ]]; }
log "selected tiers:$tiers"

if [ "${MLOPS_LINT:-1}" != 0 ]; then
    ./scripts/lint.sh
fi

# promtool checks the rendered config, the alert rules and their tests and the dashboards'
# queries, amtool the rendered Alertmanager config; the servers run the rendered configs in the
# contract tier and carry the drift metrics and alerts in the workloads tier.
if selected unit || selected contract || selected workloads; then
    log "prometheus, alertmanager, pushgateway"
    ./scripts/prometheus.sh
    MLOPS_PROMTOOL="$(./scripts/prometheus.sh path promtool)"
    MLOPS_PROMETHEUS="$(./scripts/prometheus.sh path prometheus)"
    MLOPS_ALERTMANAGER="$(./scripts/prometheus.sh path alertmanager)"
    MLOPS_AMTOOL="$(./scripts/prometheus.sh path amtool)"
    MLOPS_PUSHGATEWAY="$(./scripts/prometheus.sh path pushgateway)"
    export MLOPS_PROMTOOL MLOPS_PROMETHEUS MLOPS_ALERTMANAGER MLOPS_AMTOOL MLOPS_PUSHGATEWAY
fi
if selected workloads; then
    log "serving environment"
    ./scripts/setup.sh --serving
fi
if selected contract || selected workloads; then
    log "local servers"
    ./scripts/services.sh start
    eval "$(./scripts/services.sh env)"
    # Tests that need a local server fail, rather than skip, when it is missing.
    export MLOPS_REQUIRE_SERVICES=1
fi
if selected integration; then
    log "policy pack environment"
    ./scripts/setup.sh --policy
    log "toolchain"
    # The integration tier is part of the test command: a toolchain that cannot be built fails
    # the run, never skips the tier.
    if ! MLOPS_TOOLCHAIN_TRIM=1 ./scripts/toolchain.sh >&2; then
        log "the control-plane toolchain could not be built (scripts/toolchain.sh; logs under $(./scripts/toolchain.sh dir)/logs): the integration tier cannot run"
        exit 1
    fi
    export MLOPS_REQUIRE_INTEGRATION=1
fi

log "pytest"
.venv/bin/python -m pytest "$@"
log "passed in $(($(date +%s) - started)) s"
