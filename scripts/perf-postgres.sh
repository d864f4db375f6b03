#!/usr/bin/env bash
# PostgreSQL against bbolt in one run (README, Scale-out on PostgreSQL):
#   zdps bench (symmetric key, CSR, a new TLS connection per device) against
#   1. zdps serve on bbolt,
#   2. one zdps serve on PostgreSQL,
#   3. two zdps serve on the same PostgreSQL schema, the devices spread over
#      both (zdps bench --endpoint twice),
# alternating RUNS times, then the ratios of the medians. For the PostgreSQL
# runs the bench reports, over its timed phase, what each registration cost
# the database: round trips, serialization retries and conflicts (zdps's
# own counters, read from every replica's /metrics) and the CPU time of the
# PostgreSQL backends serving zdps (--database-pid: /proc, so PostgreSQL
# must run on this machine).
# Environment: PGURL (postgres://postgres@127.0.0.1:5432/test?sslmode=disable),
# DEVICES (3000), CONCURRENCY (256), RUNS (3), OUT (JSON reports; a temporary
# directory). Not part of make test: it takes minutes and wants a quiet box.
set -uo pipefail
cd "$(dirname "$0")/.."

PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
DEVICES=${DEVICES:-3000}
CONCURRENCY=${CONCURRENCY:-256}
RUNS=${RUNS:-3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
work=$(mktemp -d)
schemas=()
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for s in "${schemas[@]}"; do psql "$PGURL" -qAtc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1; done
	rm -rf "$work"
}
trap cleanup EXIT

bin="$work/zdps"
go build -o "$bin" ./cmd/zdps || exit 1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/kek"
echo >>"$work/kek"
chmod 600 "$work/kek"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(psql "$PGURL" -Atc 'SHOW server_version')"
echo "reports: $OUT"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# serve DATA-DIR PORT [STORE]: starts a replica in the background, appends its
# PID to pids, waits until it answers.
serve() {
	local args=(serve --data-dir "$1" --listen "127.0.0.1:$2" --hostname "127.0.0.1:$2" --log-level warn --mqtt-listen off)
	[ -n "${3:-}" ] && args+=(--store "$3" --kek-file "$work/kek")
	"$bin" "${args[@]}" >"$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 150); do
		[ -f "$1/ca-bundle.pem" ] && "$bin" --data-dir "$1" hub list >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "replica on port $2 did not start:" >&2
	tail -5 "$1.log" >&2
}

dbpids() { # schema: PIDs of the PostgreSQL backends serving this run's replicas
	psql "$PGURL" -Atc "SELECT pid FROM pg_stat_activity WHERE application_name = 'zdps-$1'" | paste -sd, -
}

# run NAME REPLICAS: one bench run; REPLICAS 0 is bbolt.
run() {
	local name=$1 n=$2 schema="" store="" dirs=() eps=() i p
	pids=()
	if [ "$n" -gt 0 ]; then
		schema="zdps_perf_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
		schemas+=("$schema")
		# application_name tells this run's backends from everyone else's.
		store="${PGURL}&schema=$schema&application_name=zdps-$schema"
	fi
	for i in $(seq "$((n > 0 ? n : 1))"); do
		p=$(port)
		dirs+=("$work/$name-$i")
		eps+=(--endpoint "127.0.0.1:$p")
		serve "$work/$name-$i" "$p" "$store"
	done
	local spids dbp=()
	spids=$(
		IFS=,
		echo "${pids[*]}"
	)
	# A warm-up run fills the connection pools (whose connections then
	# live through the timed run) and the caches, for every engine alike.
	"$bin" bench --data-dir "${dirs[0]}" "${eps[@]}" --devices 600 --concurrency "$CONCURRENCY" \
		--setup --cleanup --progress=false -o json >"$OUT/$name-warmup.json" 2>&1
	[ -n "$schema" ] && dbp=(--database-pid "$(dbpids "$schema")")
	"$bin" bench --data-dir "${dirs[0]}" "${eps[@]}" --devices "$DEVICES" --concurrency "$CONCURRENCY" \
		--setup --cleanup --server-pid "$spids" "${dbp[@]}" --progress=false -o json >"$OUT/$name.json" 2>"$OUT/$name.err"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
	python3 - "$OUT/$name.json" <<'PY'
import json, sys
path = sys.argv[1]
try:
    r = json.load(open(path))
except Exception as e:
    print("%-8s no report (%s)" % (path.split("/")[-1][:-5], e)); sys.exit()
c, l = r["cpu"], r["latencyMs"]
line = "%-8s %6.0f reg/s  p50 %4.0f  p99 %5.0f ms  zdps CPU %.2f ms/reg  load %.2f→%.2f  errors %s" % (
    path.split("/")[-1][:-5], r["registrationsPerSecond"], l["p50"], l["p99"],
    c.get("serverMsPerRegistration", 0), r["loadAverage"][0], r["loadAverage"][1], r["errors"] or "none")
s = r.get("store")
if s:
    line += "  | PostgreSQL CPU %.2f ms/reg, %.1f round trips/reg, %.1f statements/reg, retries %.3f/reg, conflicts %.3f/reg" % (
        c.get("databaseMsPerRegistration", 0), s["roundTripsPerRegistration"], s.get("statementsPerRegistration", 0), s["retriesPerRegistration"], s["conflictsPerRegistration"])
for e in r.get("perEndpoint") or []:
    line += "\n         %s: %.0f reg/s, p50 %.0f ms" % (e["endpoint"], e["registrationsPerSecond"], e["latencyMs"]["p50"])
print(line)
PY
}

echo
echo "== zdps bench: $DEVICES devices, concurrency $CONCURRENCY, CSR, new TLS connection per device; load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
	run "bolt-$i" 0
	run "pg1-$i" 1
	run "pg2-$i" 2
done

python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def med(kind):
    v = []
    for i in range(1, runs + 1):
        try:
            v.append(json.load(open("%s/%s-%d.json" % (out, kind, i)))["registrationsPerSecond"])
        except Exception:
            pass
    return statistics.median(v) if v else 0
b, p1, p2 = med("bolt"), med("pg1"), med("pg2")
print()
print("medians: bbolt %.0f  PostgreSQL one replica %.0f  two replicas %.0f reg/s" % (b, p1, p2))
if b and p1:
    print("ratios: PostgreSQL/bbolt %.2f×  two replicas/one %.2f×" % (p1 / b, p2 / p1))
PY
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
