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
// --cert-file, --key-file, --payload, --timeout-ms, --transport (e.g. `--id-scope=0ne123` or
// `--id-scope 0ne123`).
//
//   TRANSPORT         Http (default: azure-iot-provisioning-device-http), Mqtt or MqttWs
//                     (azure-iot-provisioning-device-mqtt: MQTT over TLS, MQTT over a WebSocket
//                     at /$iothub/websocket).
//   HOST              server host name or IP (default 127.0.0.1). Also the TLS name checked
//                     against the server certificate (SAN DNS or IP).
//   PORT              the transport's port (default 443 for Http and MqttWs, 8883 for Mqtt; at
//                     the default the SDK runs completely untouched).
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

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
// The port hook, error report and result line are shared with register-tpm.js (common.js);
// the hook uses azure-iot-http-base, pinned in package.json to the version -http depends on.
const { makeTransport, makeMqttTransport, errorReport, finish } = require('./common');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');

const FLAGS = ['host', 'port', 'id-scope', 'registration-id', 'symmetric-key', 'cert-file',
  'key-file', 'payload', 'timeout-ms', 'transport'];

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

function main() {
  let cfg;
  let agent = null;
  try {
    cfg = readConfig(process.argv.slice(2), process.env);
    const host = cfg.HOST || '127.0.0.1';
    const transportName = cfg.TRANSPORT || 'Http';
    if (!['Http', 'Mqtt', 'MqttWs'].includes(transportName)) throw usageError('TRANSPORT must be Http, Mqtt or MqttWs, not ' + JSON.stringify(transportName));
    const port = cfg.PORT === undefined ? (transportName === 'Mqtt' ? 8883 : 443) : Number(cfg.PORT);
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
    let t;
    if (transportName === 'Http') {
      t = makeTransport(port);
    } else {
      t = { transport: makeMqttTransport(transportName, port), agent: null };
    }
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
