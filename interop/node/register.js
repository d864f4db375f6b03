#!/usr/bin/env node
// Copyright (c) the zdps authors. SPDX-License-Identifier: MIT
//
// Interop client: registers ONE device with the unmodified official Azure IoT Node.js
// provisioning device SDK (azure-iot-provisioning-device + -http transport) against a
// DPS-compatible server (zdps, or fake-dps.js), then prints exactly one line of JSON on stdout
// and exits 0 (registered, status "assigned") or 1 (anything else).
//
// Contract (see README.md): configuration comes from the environment or from --flags of the
// same name (flags win): --host, --port, --id-scope, --registration-id, --symmetric-key,
// --cert-file, --key-file, --payload, --timeout-ms (e.g. `--id-scope=0ne123` or `--id-scope 0ne123`).
//
//   HOST              server host name or IP (default 127.0.0.1). Also the TLS name checked
//                     against the server certificate (SAN DNS or IP).
//   PORT              HTTPS port (default 443; when 443 the SDK runs completely untouched).
//   ID_SCOPE          required.
//   REGISTRATION_ID   required (for X.509 it must equal the leaf CN; the SDK does not check).
//   SYMMETRIC_KEY     base64 device key (individual key, or the key derived from a group key)
//   CERT_FILE+KEY_FILE PEM files; CERT_FILE may hold the leaf followed by intermediates, all of
//                     which are sent in the TLS handshake.
//   PAYLOAD           optional JSON, sent as the `payload` of the register request.
//   TIMEOUT_MS        optional overall deadline (default 120000). The SDK itself polls forever
//                     while the server says "assigning"; this keeps a CI run from hanging.
//
// Trust in the server's CA comes from NODE_EXTRA_CA_CERTS, which the caller sets (Node reads it
// once at start-up, so it must be in the environment of this process, not set from inside it).
//
// Output: {"ok":true,"status":..,"assignedHub":..,"deviceId":..,"raw":<registrationState>}
//     or  {"ok":false,"error":<message>,"name":<error class>,"code":<Node error code|null>,
//          "statusCode":<http status|null>,
//          "responseBody":<string|null>,"result":<registration result if any|null>}
// Set DEBUG=azure-iot* to see the SDK's own trace on stderr (stdout stays one JSON line).
'use strict';

const fs = require('fs');
const https = require('https');

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http: ProvisioningHttp } = require('azure-iot-provisioning-device-http');
// azure-iot-http-base is the SDK's own HTTP layer (a dependency of -http, pinned to the same
// version in package.json so npm dedupes it into one copy).
const { Http: HttpBase } = require('azure-iot-http-base');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');

const FLAGS = ['host', 'port', 'id-scope', 'registration-id', 'symmetric-key', 'cert-file',
  'key-file', 'payload', 'timeout-ms'];

function readConfig(argv, env) {
  const cfg = {};
  for (const f of FLAGS) {
    const envName = f.toUpperCase().replace(/-/g, '_');
    if (env[envName] !== undefined && env[envName] !== '') cfg[envName] = env[envName];
  }
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m || !FLAGS.includes(m[1])) throw usageError('unknown argument ' + JSON.stringify(argv[i]));
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) throw usageError('--' + m[1] + ' needs a value');
      value = argv[++i];
    }
    cfg[m[1].toUpperCase().replace(/-/g, '_')] = value;
  }
  return cfg;
}

function usageError(message) {
  const e = new Error(message);
  e.name = 'UsageError';
  return e;
}

// The SDK has no port option: ProvisioningDeviceClient.create(host, ...) ends in
// azure-iot-http-base's Http.buildRequest, which calls https.request({host, path, method,
// headers, cert, key, agent?}) with no `port`, so Node uses the agent's `defaultPort` (443 for
// https.globalAgent). The hook used here is the least invasive one that only touches APIs the
// packages document, and no private fields:
//   1. `new Http(httpBase)` - the provisioning transport's constructor takes an optional
//      azure-iot-http-base instance (SRS_NODE_PROVISIONING_HTTP_18_001) and hands it to its
//      RestApiClient as the `httpRequestBuilder`.
//   2. `httpBase.setOptions({ http: { agent } })` - azure-iot-http-base passes `http.agent` into
//      every https.request (SRS_NODE_HTTP_18_001).
//   3. The agent is an https.Agent whose `defaultPort` property is PORT. Node's ClientRequest
//      takes the port from `options.port || options.defaultPort || agent.defaultPort`, so every
//      request goes to PORT. Careful: `new https.Agent({ defaultPort })` does NOT work - the
//      https.Agent constructor overwrites `this.defaultPort = 443` after applying the options
//      (Node 20), so the property has to be assigned after construction.
// The other port hook in azure-iot-http-base (request options with `port`, SRS_NODE_HTTP_13_006)
// is unusable: RestApiClient only forwards request options for non-X.509 calls and the
// provisioning transport never passes any.
// The agent copies https.globalAgent's options (Node 20: keepAlive true, lifo, 5 s idle timeout)
// so connection handling matches what an unmodified device on port 443 does.
// Side effect to know about: since the port equals the agent's defaultPort, Node writes the Host
// header WITHOUT ":PORT" (exactly as it does on 443).
function makeTransport(port) {
  if (port === 443) return { transport: new ProvisioningHttp(), agent: null };
  const agent = new https.Agent({ ...https.globalAgent.options });
  agent.defaultPort = port; // see 3. above: the constructor option would be ignored
  const httpBase = new HttpBase();
  httpBase.setOptions({ http: { agent } });
  return { transport: new ProvisioningHttp(httpBase), agent };
}

function makeSecurityClient(cfg) {
  const hasKey = !!cfg.SYMMETRIC_KEY;
  const hasCert = !!(cfg.CERT_FILE || cfg.KEY_FILE);
  if (hasKey === hasCert) throw usageError('give exactly one of SYMMETRIC_KEY or CERT_FILE+KEY_FILE');
  if (hasKey) return new SymmetricKeySecurityClient(cfg.REGISTRATION_ID, cfg.SYMMETRIC_KEY);
  if (!cfg.CERT_FILE || !cfg.KEY_FILE) throw usageError('CERT_FILE and KEY_FILE go together');
  // Shape documented by azure-iot-security-x509 / the SDK samples: { cert, key } as PEM strings.
  return new X509Security(cfg.REGISTRATION_ID, {
    cert: fs.readFileSync(cfg.CERT_FILE, 'utf8'),
    key: fs.readFileSync(cfg.KEY_FILE, 'utf8'),
  });
}

function errorReport(err) {
  const response = err && (err.response || err.transportObject);
  let responseBody = err && err.responseBody !== undefined ? err.responseBody : null;
  if (responseBody !== null && typeof responseBody !== 'string') responseBody = JSON.stringify(responseBody);
  return {
    ok: false,
    error: err && err.message !== undefined ? String(err.message) : String(err),
    name: (err && (err.name || (err.constructor && err.constructor.name))) || 'Error',
    // Node/OpenSSL error code for transport failures (ECONNREFUSED, UNABLE_TO_VERIFY_LEAF_SIGNATURE...).
    code: err && typeof err.code === 'string' ? err.code : null,
    statusCode: response && typeof response.statusCode === 'number' ? response.statusCode : null,
    responseBody,
    // For status "failed" / unknown statuses the SDK attaches the parsed answer as err.result.
    result: err && err.result !== undefined && typeof err.result === 'object' ? err.result : null,
  };
}

let finished = false;
function finish(report, agent) {
  if (finished) return;
  finished = true;
  if (agent) agent.destroy();
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(report.ok ? 0 : 1));
}

function main() {
  let cfg;
  let agent = null;
  try {
    cfg = readConfig(process.argv.slice(2), process.env);
    const host = cfg.HOST || '127.0.0.1';
    const port = cfg.PORT === undefined ? 443 : Number(cfg.PORT);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw usageError('bad PORT ' + JSON.stringify(cfg.PORT));
    if (!cfg.ID_SCOPE) throw usageError('ID_SCOPE is required');
    if (!cfg.REGISTRATION_ID) throw usageError('REGISTRATION_ID is required');
    const timeoutMs = cfg.TIMEOUT_MS === undefined ? 120000 : Number(cfg.TIMEOUT_MS);
    if (!(timeoutMs > 0)) throw usageError('bad TIMEOUT_MS');
    let payload;
    if (cfg.PAYLOAD !== undefined) {
      try { payload = JSON.parse(cfg.PAYLOAD); } catch (e) { throw usageError('PAYLOAD is not JSON: ' + e.message); }
    }

    const securityClient = makeSecurityClient(cfg);
    const t = makeTransport(port);
    agent = t.agent;
    const client = ProvisioningDeviceClient.create(host, cfg.ID_SCOPE, t.transport, securityClient);
    // The SDK only sends `payload` when it is truthy.
    if (payload !== undefined) client.setProvisioningPayload(payload);

    const timer = setTimeout(() => {
      const e = new Error('no final answer within ' + timeoutMs + ' ms');
      e.name = 'TimeoutError';
      finish(errorReport(e), agent);
    }, timeoutMs);

    client.register((err, result) => {
      clearTimeout(timer);
      if (err) return finish(errorReport(err), agent);
      // `result` is the registrationState (DeviceRegistrationResult) of the final answer; the SDK
      // only gets here when the top-level status was "assigned".
      const r = result || {};
      const report = {
        ok: r.status === 'assigned' && !!r.assignedHub && !!r.deviceId,
        status: r.status === undefined ? null : r.status,
        assignedHub: r.assignedHub === undefined ? null : r.assignedHub,
        deviceId: r.deviceId === undefined ? null : r.deviceId,
        raw: result === undefined ? null : result,
      };
      if (!report.ok) {
        // The SDK reported success but the registrationState is not a usable assignment.
        report.error = 'registrationState is not assigned with assignedHub and deviceId';
        report.name = 'UnexpectedResult';
      }
      finish(report, agent);
    });
  } catch (err) {
    finish(errorReport(err), agent);
  }
}

main();
