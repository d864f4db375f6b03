#!/usr/bin/env bash
# Self-check of register.js against fake-dps.js (no zdps needed): symmetric key and X.509
# (leaf + intermediate, and leaf only), with the 202-then-poll flow and the direct-200 flow,
# plus error cases. Needs node, npm (for `npm ci` if node_modules is missing) and openssl.
#   ./run-fake.sh        # quiet: one line per case
#   VERBOSE=1 ./run-fake.sh   # also print every request the SDK sent (fake-dps log)
set -euo pipefail
cd "$(dirname "$0")"

[ -d node_modules/azure-iot-provisioning-device ] || npm ci --no-audit --no-fund >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zdps-interop-node.XXXXXX")
FAKE_PID=
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

ID_SCOPE=0ne00FAKE01
SYM_ID=sym-dev-1
SYM_KEY=$(openssl rand -base64 32)
X509_ID=x509-dev-1

# Throwaway device PKI: root -> intermediate -> leaf (CN = registration ID, clientAuth).
mkdir -p "$WORK/dev"
(
  cd "$WORK/dev"
  EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${EC[@]}" -keyout root.key -out root.pem -days 2 -subj "/CN=interop device root" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
  openssl req -new "${EC[@]}" -keyout int.key -out int.csr -subj "/CN=interop device intermediate" 2>/dev/null
  openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem -days 2 -extfile ca.ext 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > leaf.ext
  openssl req -new "${EC[@]}" -keyout leaf.key -out leaf.csr -subj "/CN=$X509_ID" 2>/dev/null
  openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null
  cat leaf.pem int.pem > leaf-chain.pem
  # A self-signed leaf, as an individual enrollment may hold.
  openssl req -x509 "${EC[@]}" -keyout self.key -out self.pem -days 2 -subj "/CN=x509-self-1" \
    -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature \
    -addext extendedKeyUsage=clientAuth 2>/dev/null
)

# start_fake ARGS...: starts fake-dps.js, sets FAKE_PID FAKE_PORT FAKE_CA FAKE_LOG.
N=0
start_fake() {
  stop_fake
  N=$((N + 1))
  FAKE_LOG="$WORK/fake-$N.log"
  node fake-dps.js --dir "$WORK/server-$N" --symmetric-key "$SYM_KEY" "$@" > "$FAKE_LOG" 2> "$WORK/fake-$N.err" &
  FAKE_PID=$!
  for _ in $(seq 100); do
    if [ -s "$FAKE_LOG" ]; then break; fi
    sleep 0.05
  done
  FAKE_PORT=$(head -1 "$FAKE_LOG" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).port))')
  FAKE_CA="$WORK/server-$N/ca.pem"
}
stop_fake() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; FAKE_PID=; fi
}

FAILED=0
# run_case NAME EXPECT(ok|fail) CHECK_JS -- ENV...: runs register.js with ENV against the current
# fake; CHECK_JS is a JS expression over `out` (register.js output) and `log` (fake records).
run_case() {
  local name=$1 expect=$2 check=$3; shift 4
  local out rc=0 before
  before=$(wc -l < "$FAKE_LOG")
  out=$(env NODE_EXTRA_CA_CERTS="$FAKE_CA" PORT="$FAKE_PORT" ID_SCOPE="$ID_SCOPE" TIMEOUT_MS=20000 "$@" node register.js) || rc=$?
  sleep 0.2 # let the fake flush its log
  if CHECK="$check" EXPECT="$expect" RC="$rc" OUT="$out" node -e '
      const out = JSON.parse(process.env.OUT);
      const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(Number(process.argv[2])).map(JSON.parse);
      const log = lines.filter((l) => l.event === "request");
      const conns = lines.filter((l) => l.event === "connection");
      const rcOk = (process.env.EXPECT === "ok") === (process.env.RC === "0") && out.ok === (process.env.EXPECT === "ok");
      const ok = rcOk && eval(process.env.CHECK);
      if (!ok) { console.error("  output: " + process.env.OUT); console.error("  requests: " + JSON.stringify(log.map((l) => [l.method, l.url, l.answer.status]))); }
      process.exit(ok ? 0 : 1);' "$FAKE_LOG" "$before"; then
    echo "PASS $name"
  else
    echo "FAIL $name (rc=$rc)"; FAILED=1
  fi
  if [ -n "${VERBOSE:-}" ]; then tail -n +$((before + 1)) "$FAKE_LOG" | sed 's/^/    fake: /'; echo "    register.js: $out"; fi
}

SYM=(HOST=127.0.0.1 REGISTRATION_ID=$SYM_ID SYMMETRIC_KEY=$SYM_KEY)
X509=(HOST=localhost REGISTRATION_ID=$X509_ID CERT_FILE=$WORK/dev/leaf-chain.pem KEY_FILE=$WORK/dev/leaf.key)
SELF=(HOST=127.0.0.1 REGISTRATION_ID=x509-self-1 CERT_FILE=$WORK/dev/self.pem KEY_FILE=$WORK/dev/self.key)

start_fake --mode 202 --polls 1
run_case "symmetric key, 202 + 2 polls, payload" ok '
  out.deviceId === "sym-dev-1" && out.raw.payload.echo.n === 1 &&
  log.length === 3 && log.every((l) => l.sas && l.sas.sigValid) &&
  log[0].method === "PUT" && JSON.parse(log[0].bodyText).payload.n === 1' \
  -- "${SYM[@]}" PAYLOAD='{"n":1}'
start_fake --mode 202
run_case "x509 leaf+intermediate, 202 + poll, HOST=localhost" ok '
  out.deviceId === "x509-dev-1" && log.length === 2 &&
  log.every((l) => l.sas === null && l.clientCertificate.presented && l.clientCertificate.chain.length === 2) &&
  conns[0].servername === "localhost" && JSON.parse(log[0].bodyText).registrationId === "x509-dev-1"' \
  -- "${X509[@]}"
start_fake --mode 200
run_case "symmetric key, direct 200" ok 'log.length === 1 && log[0].sas.sigValid' -- "${SYM[@]}"
run_case "x509 self-signed leaf, direct 200" ok '
  log.length === 1 && log[0].clientCertificate.chain.length === 1 && out.deviceId === "x509-self-1"' -- "${SELF[@]}"
start_fake --mode 200 --final-status failed
run_case "status failed" fail 'out.name === "ProvisioningRegistrationFailedError" && out.result.registrationState.errorCode === 401002' \
  -- "${SYM[@]}"
start_fake --mode 202 --final-status disabled
run_case "status disabled (unknown to the SDK)" fail 'out.name === "SyntaxError" && out.error === "status is disabled" && log.length === 2' \
  -- "${X509[@]}"
start_fake --mode 202 --first-status 401
run_case "401 on register is final" fail 'out.statusCode === 401 && out.name === "UnauthorizedError" && log.length === 1' \
  -- "${SYM[@]}"
start_fake --mode 202 --first-status 429
run_case "429 on register: SDK gives up (no retry)" fail 'out.statusCode === 429 && log.length === 1' \
  -- "${SYM[@]}"
start_fake --mode 202
run_case "wrong CA is refused by the client" fail 'log.length === 0 && out.code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE"' \
  -- "${SYM[@]}" NODE_EXTRA_CA_CERTS="$WORK/dev/root.pem"
stop_fake

if [ "$FAILED" != 0 ]; then echo "run-fake: FAILED" >&2; exit 1; fi
echo "run-fake: all passed"
