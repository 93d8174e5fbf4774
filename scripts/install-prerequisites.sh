#!/usr/bin/env bash
# Installs, once, the system packages the test command needs and never installs itself (Debian
# or Ubuntu, with apt-get; needs root or sudo):
#   - postgresql: the local Postgres that the contract and workload tiers use (services.sh)
#   - redis-server: the local Redis of the same tiers
#   - shellcheck: the test command lints scripts/ and the rendered Job scripts with it
#   - python3-venv, when python3 has no ensurepip (Debian, Ubuntu): setup.sh installs the pinned
#     uv into a private virtualenv, as these systems refuse pip installs into their Python
# Packages already there are left alone. Not installed here: Python 3.11 and Go 1.26 or newer
# (the script says if they are missing); the Python packages come from uv.lock (setup.sh).
#
#   ./scripts/install-prerequisites.sh
set -euo pipefail

log() { printf '[prerequisites] %s\n' "$*" >&2; }

missing=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
  log "postgresql, redis-server, shellcheck and python3's venv are installed"
else
  if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
  log "installing ${missing[*]} (apt-get)"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed ${missing[*]}"
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
  log "note: Python 3.11 or newer is needed as python3 (it is not installed by this script)"
go_version="$(go env GOVERSION 2>/dev/null || true)"
if [[ ! "$go_version" =~ ^go1\.(2[6-9]|[3-9][0-9]) ]]; then
  log "note: Go 1.26 or newer is needed on PATH (found: ${go_version:-none}); see https://go.dev/dl/"
fi
