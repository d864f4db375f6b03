#!/usr/bin/env bash
# PostgreSQL against bbolt in one run (README, Scale-out on PostgreSQL):
#   zdps bench (symmetric key, CSR, a new TLS connection per device) against
#   1. zdps serve on bbolt,
#   2. one zdps serve on PostgreSQL,
#   3. two zdps serve on the same PostgreSQL schema, the devices spread over
#      both (zdps bench --endpoint twice),
# alternating RUNS times, then the ratios of the medians. For the PostgreSQL
# runs it reads, from the server's side, what each registration cost the
# database: transactions (pg_stat_database), round trips and serialization
# retries (zdps's own counters on /metrics) and the CPU time of the
# PostgreSQL backends serving zdps (/proc, so PostgreSQL must run on this
# machine).
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
	local args=(serve --data-dir "$1" --listen "127.0.0.1:$2" --log-level warn --mqtt-listen off)
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

metric() { # data-dir name: sum of a counter on one replica's /metrics
	"$bin" --data-dir "$1" metrics 2>/dev/null | awk -v n="$2" '$1 ~ "^"n"({|$)" {s+=$2} END {printf "%d\n", s}'
}

pgstat() { # datname counters: commits+rollbacks
	psql "$PGURL" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

pgcpu() { # schema: CPU ticks of the PostgreSQL backends of zdps on that schema
	local s=0 p
	for p in $(psql "$PGURL" -Atc "SELECT pid FROM pg_stat_activity WHERE application_name = 'zdps-$1'"); do
		[ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$s"
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
	local retries0=0 rt0=0 x0=0 c0=0 retries1=0 rt1=0 x1=0 c1=0
	if [ -n "$schema" ]; then
		for d in "${dirs[@]}"; do
			retries0=$((retries0 + $(metric "$d" zdps_store_transaction_retries_total)))
			rt0=$((rt0 + $(metric "$d" zdps_store_round_trips_total)))
		done
		x0=$(pgstat)
		c0=$(pgcpu "$schema")
	fi
	local spids
	spids=$(
		IFS=,
		echo "${pids[*]}"
	)
	"$bin" bench --data-dir "${dirs[0]}" "${eps[@]}" --devices "$DEVICES" --concurrency "$CONCURRENCY" \
		--setup --cleanup --server-pid "$spids" --progress=false -o json >"$OUT/$name.json" 2>"$OUT/$name.err"
	if [ -n "$schema" ]; then
		x1=$(pgstat)
		c1=$(pgcpu "$schema")
		for d in "${dirs[@]}"; do
			retries1=$((retries1 + $(metric "$d" zdps_store_transaction_retries_total)))
			rt1=$((rt1 + $(metric "$d" zdps_store_round_trips_total)))
		done
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
	python3 - "$OUT/$name.json" "$DEVICES" "$((x1 - x0))" "$((c1 - c0))" "$((retries1 - retries0))" "$((rt1 - rt0))" "$(getconf CLK_TCK)" "$schema" <<'PY'
import json, sys
path, devices, xacts, ticks, retries, rts, hz, schema = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print("%-14s no report (%s)" % (path.split("/")[-1][:-5], e)); sys.exit()
ok = max(r["succeeded"], 1)
line = "%-14s %6.0f reg/s  p50 %4.0f  p99 %5.0f ms  server %.2f ms/reg  load %.2f→%.2f  errors %s" % (
    path.split("/")[-1][:-5], r["registrationsPerSecond"], r["latencyMs"]["p50"], r["latencyMs"]["p99"],
    r["cpu"].get("serverMsPerRegistration", 0), r["loadAverage"][0], r["loadAverage"][1], r["errors"] or "none")
if schema:
    # Counted over setup, timed phase and cleanup: an upper bound per registration.
    line += "  | per reg (setup+run+cleanup): xacts %.1f  round trips %.1f  retries %.3f  PG CPU %.2f ms" % (
        int(xacts) / ok, int(rts) / ok, int(retries) / ok, int(ticks) * 1000 / int(hz) / ok)
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
