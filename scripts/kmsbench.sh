#!/usr/bin/env bash
# The README's figures of "CA keys in an HSM, a KMS or a TPM", in one run:
#   1. BenchmarkIssue (internal/cakms): one device certificate issued with the
#      intermediate's key sealed in the store (softkms), in SoftHSM2 (PKCS#11)
#      and in swtpm (tpmkms);
#   2. zdps bench against a zdps serve with its CA (and so its TLS key) in
#      each backend: registrations per second end to end, a new TLS
#      connection and a CSR per device.
# Needs softhsm2 and swtpm (scripts/test-setup.sh) and a C compiler.
# Environment: DEVICES (2000), CONCURRENCY (32), BENCHTIME (2s).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-2000}
CONCURRENCY=${CONCURRENCY:-32}
BENCHTIME=${BENCHTIME:-2s}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
go test -tags pkcs11 -run '^$' -bench Issue -benchtime "$BENCHTIME" ./internal/cakms/ | grep Benchmark
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"

bin="$work/zdps"
go build -tags pkcs11 -o "$bin" ./cmd/zdps
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

softhsm() { # dir: a fresh token (SOFTHSM2_CONF points at its config); prints its URI
	mkdir -p "$1/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$1/tokens" >"$1/softhsm2.conf"
	softhsm2-util --init-token --free --label zdps --pin 1234 --so-pin 5678 >/dev/null
	echo "pkcs11:module-path=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -n1);token=zdps?pin-value=1234"
}

swtpm_start() { # dir: a fresh swtpm; prints its tpmkms URI
	swtpm socket --tpm2 --tpmstate dir="$1" --server type=unixio,path="$1/tpm.sock" \
		--ctrl type=unixio,path="$1/ctrl.sock" --flags not-need-init,startup-clear >/dev/null 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$1/tpm.sock" ] && break; sleep 0.05; done
	echo "tpmkms:device=$1/tpm.sock;storage-directory=$1/blobs"
}

run() { # name uri
	local name=$1 uri=$2 dir="$work/data-$1" p
	p=$(port)
	mkdir -p "$dir"
	if [ -n "$uri" ]; then "$bin" ca init --data-dir "$dir" --kms "$uri" >/dev/null; fi
	"$bin" serve --data-dir "$dir" --listen "127.0.0.1:$p" --mqtt-listen off --log-level warn ${uri:+--ca-kms "$uri"} >"$dir.log" 2>&1 &
	local pid=$!
	pids+=($pid)
	for _ in $(seq 200); do
		[ -f "$dir/ca-bundle.pem" ] && "$bin" --data-dir "$dir" hub list >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$bin" bench --data-dir "$dir" --devices "$DEVICES" --concurrency "$CONCURRENCY" --setup --cleanup \
		--server-pid "$pid" --progress=false -o json >"$dir.json" || true
	python3 - "$name" "$dir.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2])); c = r["cpu"]
print("%-16s %6.0f reg/s  p50 %5.0f  p99 %5.0f ms  server %.2f ms/reg  load %.2f->%.2f  errors %s" % (
    sys.argv[1], r["registrationsPerSecond"], r["latencyMs"]["p50"], r["latencyMs"]["p99"],
    c.get("serverMsPerRegistration", 0), r["loadAverage"][0], r["loadAverage"][1], r["errors"] or "none"))
PY
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

run softkms ""
mkdir -p "$work/hsm" "$work/tpm"
export SOFTHSM2_CONF="$work/hsm/softhsm2.conf" # for softhsm2-util and zdps alike
run pkcs11-softhsm2 "$(softhsm "$work/hsm")"
run tpmkms-swtpm "$(swtpm_start "$work/tpm")"
