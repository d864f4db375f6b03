#!/usr/bin/env node
// Copyright (c) the zdps authors. SPDX-License-Identifier: MIT
//
// Interop client for TPM attestation (issue 5): registers ONE device with the unmodified
// official Azure IoT Node.js provisioning device SDK and azure-iot-security-tpm, whose TPM is a
// simulator reached over the Microsoft TPM simulator socket protocol (tss.js `new Tpm(true, host,
// port)`; with swtpm, through interop/tpmbridge). Prints exactly one line of JSON and exits 0 or 1.
//
//   HOST, PORT, ID_SCOPE, PAYLOAD, TIMEOUT_MS   as in register.js (NODE_EXTRA_CA_CERTS too)
//   REGISTRATION_ID   optional: without it the SDK derives it from the EK
//                     (lowercase base32 of SHA-256 of the EK's TPM2B_PUBLIC, no padding)
//   TPM_HOST          simulator host (default 127.0.0.1)
//   TPM_PORT          simulator command port (required; the platform port is TPM_PORT+1)
//   MODE              "register" (default) or "ek": print what the enrollment needs
//                     {"ok":true,"registrationId","endorsementKey","storageRootKey"} (base64
//                     TPM2B_PUBLIC, as the SDK reads or creates them) and exit.
//
// Output of MODE=register: as register.js ({"ok":true,"status","assignedHub","deviceId","raw"}
// or {"ok":false,"error","name","code","statusCode","responseBody","result"}).
'use strict';

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { makeTransport, errorReport, finish } = require('./common');
const { TpmSecurityClient } = require('azure-iot-security-tpm');
const { Tpm } = require('tss.js');

function env(name, dflt) {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : v;
}

function main() {
  let agent = null;
  try {
    const tpmPort = Number(env('TPM_PORT'));
    if (!Number.isInteger(tpmPort)) throw new Error('TPM_PORT is required');
    const tpm = new Tpm(true, env('TPM_HOST', '127.0.0.1'), tpmPort);
    const security = new TpmSecurityClient(env('REGISTRATION_ID', ''), tpm);
    const timeoutMs = Number(env('TIMEOUT_MS', '120000'));
    const timer = setTimeout(() => {
      const e = new Error('no final answer within ' + timeoutMs + ' ms');
      e.name = 'TimeoutError';
      finish(errorReport(e), agent);
    }, timeoutMs);

    if (env('MODE', 'register') === 'ek') {
      security.getEndorsementKey((err, ek) => {
        if (err) return finish(errorReport(err));
        security.getStorageRootKey((err, srk) => {
          if (err) return finish(errorReport(err));
          security.getRegistrationId((err, regId) => {
            clearTimeout(timer);
            if (err) return finish(errorReport(err));
            finish({ ok: true, registrationId: regId, endorsementKey: ek.toString('base64'), storageRootKey: srk.toString('base64') });
          });
        });
      });
      return;
    }

    const port = Number(env('PORT', '443'));
    const idScope = env('ID_SCOPE');
    if (!idScope) throw new Error('ID_SCOPE is required');
    const t = makeTransport(port);
    agent = t.agent;
    const client = ProvisioningDeviceClient.create(env('HOST', '127.0.0.1'), idScope, t.transport, security);
    if (env('PAYLOAD')) client.setProvisioningPayload(JSON.parse(env('PAYLOAD')));
    client.register((err, result) => {
      clearTimeout(timer);
      if (err) return finish(errorReport(err), agent);
      // Unlike the symmetric-key and X.509 paths, the TPM path hands back the whole
      // RegistrationOperationStatus ({operationId, status, registrationState}).
      const r = (result && result.registrationState) || result || {};
      const report = {
        ok: r.status === 'assigned' && !!r.assignedHub && !!r.deviceId,
        status: r.status === undefined ? null : r.status,
        assignedHub: r.assignedHub === undefined ? null : r.assignedHub,
        deviceId: r.deviceId === undefined ? null : r.deviceId,
        raw: r,
      };
      if (!report.ok) {
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
