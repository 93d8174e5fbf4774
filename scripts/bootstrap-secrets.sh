#!/usr/bin/env bash
# Generates every missing stack secret with `pulumi config set --secret`.
#
#   ./scripts/bootstrap-secrets.sh <stack>
#
# Secrets already in the stack are kept. The credentials of external services (an existing
# Postgres admin, S3 keys) and a private registry's token (imagePullPassword) cannot be
# generated: the script names the command that sets each.
# Values go to Pulumi on standard input, never on a command line.
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:?usage: ./scripts/bootstrap-secrets.sh <stack>}"
[ -x .venv/bin/python ] || ./scripts/setup.sh
command -v pulumi >/dev/null 2>&1 || {
  echo "error: the pulumi CLI is not on PATH (install it, or: eval \"\$(./scripts/toolchain.sh env)\")" >&2
  exit 1
}

plan=$(.venv/bin/python -m mlops.stackfile secrets --stack "$stack")
pulumi stack select --create "$stack" --non-interactive >/dev/null

to_supply=()
while read -r key action; do
  case "$action" in
    generate)
      .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24), end="")' \
        | pulumi config set --secret "$key" --stack "$stack" --non-interactive
      echo "[secrets] $stack: generated $key" >&2
      ;;
    generate-rsa)
      # PKCS#1 PEM: flyteadmin reads its token signing key with ParsePKCS1PrivateKey.
      openssl genrsa -traditional 2048 2>/dev/null \
        | pulumi config set --secret "$key" --stack "$stack" --non-interactive
      echo "[secrets] $stack: generated $key (RSA 2048)" >&2
      ;;
    supply) to_supply+=("$key") ;;
    set | unused) ;;
    *) echo "error: unexpected plan line: $key $action" >&2; exit 1 ;;
  esac
done <<<"$plan"

if [ "${#to_supply[@]}" -gt 0 ]; then
  echo "error: stack $stack needs credentials only you know (external services, a registry token); set:" >&2
  for key in "${to_supply[@]}"; do
    echo "  pulumi config set --secret $key --stack $stack   # value read from standard input" >&2
  done
  exit 1
fi
echo "[secrets] $stack: every secret is set" >&2
