#!/usr/bin/env bash
# Installs and starts what `make test` needs on a fresh machine of this kind:
# npm packages of the interop tests, and PostgreSQL when it is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f interop/node/package-lock.json ]; then
  if ! command -v node >/dev/null 2>&1; then
    echo "test-setup: node is needed for the interop tests; installing" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  (cd interop/node && npm ci --no-audit --no-fund --loglevel=error)
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "test-setup: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
