#!/usr/bin/env node
// Copyright (c) the zdps authors. SPDX-License-Identifier: MIT
//
// A tiny fake of the DPS device API over HTTPS (docs/protocol.md#device-api-over-https), just enough for the
// official Node.js SDK to complete a registration, and a recorder of exactly what the SDK sends.
// It exists to develop and self-check register.js without the real zdps server. It is NOT a
// reference implementation: it authenticates nothing (it only reports whether a SAS verifies
// when given --symmetric-key), and it assigns every registration.
//
//   node fake-dps.js [--port 0] [--mode 202|200] [--polls N] [--retry-after S]
//                    [--first-status CODE] [--symmetric-key B64] [--dir DIR]
//
//   --mode 202        (default) PUT register -> 202 {operationId, status:"assigning"} with
//                     Retry-After; GET operations -> 202 assigning N times (--polls, default 0),
//                     then 200 {operationId, status:"assigned", registrationState}.
//   --mode 200        PUT register -> 200 assigned directly.
//   --first-status C  answer the first register PUT with HTTP status C and an error body
//                     (with Retry-After), to observe the SDK's retry behaviour (e.g. 429, 503).
//   --final-status S  status string of the final answer (default assigned; try failed, disabled).
//   --symmetric-key K verify the SAS of every request against device key K (base64).
//   --dir DIR         where to put the generated CA and server certificate (default: a temp dir).
//
// On start it generates, with the openssl CLI, a throwaway root CA and a server certificate for
// DNS:localhost and IP:127.0.0.1, listens on 127.0.0.1, and prints one JSON line
//   {"event":"ready","port":<port>,"caFile":"<root CA PEM; use as NODE_EXTRA_CA_CERTS>"}
// then one JSON line per connection and per request ({"event":"connection"|"request", ...}).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

function parseArgs(argv) {
  const opts = { port: 0, mode: '202', polls: 0, retryAfter: '1', firstStatus: 0, finalStatus: 'assigned', symmetricKey: '', dir: '' };
  const names = { '--port': 'port', '--mode': 'mode', '--polls': 'polls', '--retry-after': 'retryAfter',
    '--first-status': 'firstStatus', '--final-status': 'finalStatus', '--symmetric-key': 'symmetricKey', '--dir': 'dir' };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    if (!names[flag]) throw new Error('unknown argument ' + argv[i]);
    if (value === undefined) value = argv[++i];
    opts[names[flag]] = value;
  }
  opts.port = Number(opts.port);
  opts.polls = Number(opts.polls);
  opts.firstStatus = Number(opts.firstStatus);
  if (!['200', '202'].includes(String(opts.mode))) throw new Error('--mode must be 200 or 202');
  return opts;
}

function openssl(args, cwd) {
  execFileSync('/usr/bin/openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// Root CA (P-256, self-signed) and a server leaf signed by it.
function makeServerPki(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=fake-dps test root', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' +
    'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'], dir);
  return { caFile: path.join(dir, 'ca.pem'), certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key') };
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Split "SharedAccessSignature a=b&c=d" keeping field order and raw (still encoded) values.
function parseSas(header, deviceKey) {
  const m = /^SharedAccessSignature (.*)$/s.exec(header);
  if (!m) return { scheme: header.split(' ')[0], parsed: false };
  const fields = m[1].split('&').map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
  });
  const get = (k) => (fields.find((f) => f[0] === k) || [])[1];
  const out = {
    scheme: 'SharedAccessSignature',
    fieldOrder: fields.map((f) => f[0]),
    srRaw: get('sr'),
    srIsPercentEncoded: /%[0-9A-Fa-f]{2}/.test(get('sr') || ''),
    sigRaw: get('sig'),
    skn: get('skn'),
    se: get('se'),
    secondsToExpiry: get('se') ? Number(get('se')) - Math.floor(Date.now() / 1000) : null,
  };
  if (deviceKey && out.srRaw !== undefined && out.se !== undefined) {
    // sig = urlencode(base64(HMAC-SHA256(base64decode(key), sr_as_sent + "\n" + se)))
    const expect = crypto.createHmac('sha256', Buffer.from(deviceKey, 'base64'))
      .update(out.srRaw + '\n' + out.se).digest('base64');
    out.sigValid = decodeURIComponent(out.sigRaw || '') === expect;
  }
  return out;
}

function describePeerChain(sock) {
  if (typeof sock.getPeerCertificate !== 'function') return null;
  const leaf = sock.getPeerCertificate(true);
  if (!leaf || !leaf.raw) return { presented: false };
  // Walk the chain as Node assembled it from what the client sent (the root is not sent, so the
  // walk stops at the last certificate the client presented, or at a self-issued one).
  const chain = [];
  const seen = new Set();
  for (let c = leaf; c && c.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    chain.push({ subjectCN: c.subject && c.subject.CN, issuerCN: c.issuer && c.issuer.CN, ca: !!c.ca });
  }
  return { presented: true, authorized: sock.authorized, authorizationError: sock.authorizationError || null, chain };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'fake-dps-'));
  const pki = makeServerPki(dir);

  const operations = new Map(); // operationId -> { registrationId, polls, request }
  let registerCount = 0;
  let connCount = 0;

  const server = https.createServer({
    cert: fs.readFileSync(pki.certFile),
    key: fs.readFileSync(pki.keyFile),
    requestCert: true,          // ask every client for a certificate (X.509 attestation) ...
    rejectUnauthorized: false,  // ... but accept anything; we only record what was presented.
  });
  server.keepAliveTimeout = 60000; // longer than any Retry-After we send, like zdps must be

  server.on('secureConnection', (sock) => {
    sock._fakeId = ++connCount;
    sock._fakeRequests = 0;
    emit({ event: 'connection', conn: sock._fakeId, remotePort: sock.remotePort,
      servername: sock.servername || null, protocol: sock.getProtocol(), alpn: sock.alpnProtocol || null,
      cipher: sock.getCipher().name, clientCertificate: describePeerChain(sock) });
    sock.on('close', () => emit({ event: 'close', conn: sock._fakeId, requests: sock._fakeRequests }));
  });
  server.on('tlsClientError', (err) => emit({ event: 'tlsClientError', error: err.message }));

  server.on('request', (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const sock = req.socket;
      sock._fakeRequests++;
      const bodyText = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try { body = bodyText ? JSON.parse(bodyText) : null; } catch (e) { body = { unparsable: bodyText }; }
      const url = new URL(req.url, 'https://fake');
      const record = {
        event: 'request', conn: sock._fakeId, requestOnConn: sock._fakeRequests,
        method: req.method, url: req.url, httpVersion: req.httpVersion,
        rawHeaders: pairs(req.rawHeaders), bodyText,
        sas: req.headers.authorization ? parseSas(req.headers.authorization, opts.symmetricKey) : null,
        clientCertificate: describePeerChain(sock),
      };

      const send = (status, obj, extra) => {
        const headers = Object.assign({ 'Content-Type': 'application/json; charset=utf-8' }, extra || {});
        const text = JSON.stringify(obj);
        record.answer = { status, headers, body: obj };
        emit(record);
        res.writeHead(status, headers);
        res.end(text);
      };

      // Paths matched case-insensitively, segments percent-decoded (docs/protocol.md#conventions).
      const segs = url.pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
      const lower = segs.map((s) => s.toLowerCase());
      const now = new Date().toISOString();
      const state = (registrationId, payload) => {
        if (opts.finalStatus !== 'assigned') {
          return { registrationId, createdDateTimeUtc: now, status: opts.finalStatus, errorCode: 401002,
            errorMessage: 'fake-dps: final status ' + opts.finalStatus, lastUpdatedDateTimeUtc: now };
        }
        const st = { registrationId, createdDateTimeUtc: now, assignedHub: 'fake-hub.azure-devices.net',
          deviceId: registrationId, status: 'assigned', substatus: 'initialAssignment',
          lastUpdatedDateTimeUtc: now, etag: '"' + crypto.randomBytes(4).toString('hex') + '"' };
        if (payload !== undefined) st.payload = { echo: payload };
        return st;
      };

      if (req.method === 'PUT' && segs.length === 4 && lower[1] === 'registrations' && lower[3] === 'register') {
        registerCount++;
        const registrationId = segs[2];
        if (opts.firstStatus && registerCount === 1) {
          return send(opts.firstStatus, { errorCode: opts.firstStatus * 1000, trackingId: crypto.randomUUID(),
            message: 'fake-dps: forced status ' + opts.firstStatus, timestampUtc: now },
          { 'Retry-After': opts.retryAfter, 'x-ms-error-code': String(opts.firstStatus * 1000) });
        }
        const payload = body && body.payload;
        if (opts.mode === '200') {
          return send(200, { operationId: '5.' + crypto.randomBytes(8).toString('hex') + '.' + crypto.randomUUID(),
            status: opts.finalStatus, registrationState: state(registrationId, payload) });
        }
        const operationId = '5.' + crypto.randomBytes(8).toString('hex') + '.' + crypto.randomUUID();
        operations.set(operationId, { registrationId, polls: 0, payload });
        return send(202, { operationId, status: 'assigning' }, {
          'Retry-After': opts.retryAfter,
          Location: url.pathname.replace(/\/register$/i, '/operations/' + operationId) + url.search,
        });
      }
      if (req.method === 'GET' && segs.length === 5 && lower[1] === 'registrations' && lower[3] === 'operations') {
        const op = operations.get(segs[4]);
        if (!op || op.registrationId !== segs[2]) {
          return send(404, { errorCode: 404201, trackingId: crypto.randomUUID(), message: 'Operation not found.', timestampUtc: now },
            { 'x-ms-error-code': '404201' });
        }
        op.polls++;
        if (op.polls <= opts.polls) {
          return send(202, { operationId: segs[4], status: 'assigning' }, { 'Retry-After': opts.retryAfter });
        }
        return send(200, { operationId: segs[4], status: opts.finalStatus, registrationState: state(op.registrationId, op.payload) });
      }
      return send(404, { errorCode: 404000, trackingId: crypto.randomUUID(), message: 'fake-dps: no route', timestampUtc: now });
    });
  });

  server.listen(opts.port, '127.0.0.1', () => {
    emit({ event: 'ready', port: server.address().port, caFile: pki.caFile, dir, mode: opts.mode });
  });
  const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function pairs(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

main();
