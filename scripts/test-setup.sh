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

# TPM tests: Debian's swtpm is the TPM of the Node.js interop test
# (interop/node_tpm_test.go); the in-process reference simulator
# (go-tpm-tools, cgo) needs a C compiler and OpenSSL's headers.
tpm_pkgs=()
command -v swtpm >/dev/null 2>&1 || tpm_pkgs+=(swtpm swtpm-tools)
command -v gcc >/dev/null 2>&1 || tpm_pkgs+=(gcc)
[ -f /usr/include/openssl/evp.h ] || tpm_pkgs+=(libssl-dev)
if [ ${#tpm_pkgs[@]} -gt 0 ]; then
  echo "test-setup: installing ${tpm_pkgs[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tpm_pkgs[@]}" >/dev/null
fi

# CA keys in a KMS (test/kms, internal/cakms): SoftHSM2 is the PKCS#11 HSM
# of the tests (each test makes its own token via SOFTHSM2_CONF); swtpm,
# above, is the TPM of tpmkms.
if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "test-setup: installing softhsm2" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null
fi

# Security operations: a real Prometheus scrapes zdps in test/secops (the
# test starts its own instance on a free port; the packaged service is
# not used).
if ! command -v prometheus >/dev/null 2>&1; then
  echo "test-setup: installing prometheus" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# The Debian package starts its own service on :9090; the tests need none.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi

# The web console's end-to-end test (test/console) drives Debian's
# headless Chromium; ZDPS_TEST_CHROMIUM=off skips it instead.
if [ "${ZDPS_TEST_CHROMIUM:-}" != "off" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "test-setup: installing chromium" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "test-setup: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

# The store/postgres conformance suite, test/replicas and test/storebench use
# $ZDPS_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test) and
# fail when it does not answer; ZDPS_TEST_POSTGRES=off skips them instead.
if [ "${ZDPS_TEST_POSTGRES:-}" != "off" ] && command -v pg_isready >/dev/null 2>&1; then
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  if [ -z "${ZDPS_TEST_POSTGRES:-}" ] && command -v psql >/dev/null 2>&1 &&
    ! psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1; then
    echo "test-setup: creating database test" >&2
    createdb -h 127.0.0.1 -U postgres test || true
  fi
fi
