#!/usr/bin/env bash
# Reproduces the README's Performance figures on this machine, in one run:
#   1. zdps bench against a local zdps serve (embedded bbolt store, fsync'd,
#      in $TMPDIR: put it on the disk you want to measure), symmetric key,
#      X.509 and (software) TPM, a new TLS connection per device, CSRs, RUNS times each, with the
#      server's CPU time per registration; then symmetric key over MQTT beside HTTPS
#      against one server (TRANSPORT_DEVICES each, 3000 by default);
#   2. the Go benchmarks of each pipeline step and of the bare primitives
#      (TLS handshake, ECDSA P-256, fdatasync'd write).
# Environment: DEVICES (20000), CONCURRENCY (256), RUNS (3), PORT (18443), MQTT_PORT (18883),
# TRANSPORT_DEVICES (3000),
# BENCHTIME (1s), OUT (directory for the JSON reports; a temporary one).
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICES=${DEVICES:-20000}
CONCURRENCY=${CONCURRENCY:-256}
RUNS=${RUNS:-3}
PORT=${PORT:-18443}
MQTT_PORT=${MQTT_PORT:-18883}
TRANSPORT_DEVICES=${TRANSPORT_DEVICES:-3000}
BENCHTIME=${BENCHTIME:-1s}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bin="$work/zdps"
go build -o "$bin" ./cmd/zdps
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Go $(go env GOVERSION)"
echo "reports: $OUT"

serve() { # data-dir: starts zdps serve, sets pid
	# Every simulated device connects from 127.0.0.1: lift the MQTT
	# per-address limit above the concurrency.
	"$bin" serve --mqtt-listen "127.0.0.1:$MQTT_PORT" --mqtt-max-connections-per-ip $((CONCURRENCY * 4)) \
		--data-dir "$1" --listen "127.0.0.1:$PORT" --log-level warn >"$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -f "$1/ca-bundle.pem" ] && "$bin" --data-dir "$1" hub list >/dev/null 2>&1 && break
		sleep 0.1
	done
}

report() { # json-file
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["latencyMs"]; c = r["cpu"]
name = r["attestation"] if r.get("transport", "https") == "https" else r["attestation"] + " " + r["transport"]
print("%-28s %6.0f reg/s  p50 %4.0f  p90 %4.0f  p99 %4.0f  max %4.0f ms  server %.2f ms/reg  simulator %.2f ms/reg  load %.2f→%.2f  errors %s" % (
    name, r["registrationsPerSecond"], l["p50"], l["p90"], l["p99"], l["max"],
    c.get("serverMsPerRegistration", 0), c["clientMsPerRegistration"], r["loadAverage"][0], r["loadAverage"][1], r["errors"] or "none"))
PY
}

run() { # attestation run-number
	local att=$1 n=$2 dir="$work/data-$1-$2" pid
	serve "$dir"
	"$bin" bench --data-dir "$dir" --attestation "$att" --devices "$DEVICES" --concurrency "$CONCURRENCY" \
		--setup --server-pid "$pid" --progress=false -o json >"$OUT/$att-$n.json" || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
	report "$OUT/$att-$n.json"
}

transports() { # run-number: HTTPS, MQTT and MQTT-WS against one server
	local n=$1 dir="$work/data-transports-$1" pid tr
	serve "$dir"
	for tr in https mqtt mqtt-ws; do
		"$bin" bench --data-dir "$dir" --transport "$tr" --mqtt-endpoint "127.0.0.1:$MQTT_PORT" \
			--devices "$TRANSPORT_DEVICES" --concurrency "$CONCURRENCY" --setup --cleanup \
			--server-pid "$pid" --progress=false -o json >"$OUT/transport-$tr-$n.json" || true
		report "$OUT/transport-$tr-$n.json"
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}

echo
echo "== zdps bench: $DEVICES devices, concurrency $CONCURRENCY, CSR, new TLS connection per device"
for att in symmetric-individual x509 tpm; do
	for n in $(seq "$RUNS"); do run "$att" "$n"; done
done

echo
echo "== transports: symmetric key, $TRANSPORT_DEVICES devices each, concurrency $CONCURRENCY, CSR, one server"
for n in $(seq "$RUNS"); do transports "$n"; done

echo
echo "== pipeline steps and primitives (go test -bench, $BENCHTIME each)"
go test -run '^$' -benchmem -benchtime "$BENCHTIME" \
	-bench 'TLSHandshake|ECDSAP256|FsyncWrite|VerifyIndividual|VerifyGroup|Hashed50Hubs|SignCSR|PutSerial|PutParallel|RegisterSymmetric' \
	./internal/bench ./attestation/symmetric ./attestation/x509 ./allocation/hashed ./internal/ca ./internal/store/bolt ./internal/provisioning/symkey |
	grep -E '^(Benchmark|ok|FAIL|pkg:)'
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
