'use strict';
// What register.js and register-tpm.js share: the port hook (README.md,
// "The port hook"), the error report and the one-line result.
const https = require('https');
const { Http: ProvisioningHttp } = require('azure-iot-provisioning-device-http');
const { Http: HttpBase } = require('azure-iot-http-base');

// makeTransport gives the SDK's HTTP transport an agent whose defaultPort
// is port: the SDK has no port option. The agent's constructor ignores a
// defaultPort option, so it is set afterwards.
function makeTransport(port) {
  if (port === 443) return { transport: new ProvisioningHttp(), agent: null };
  const agent = new https.Agent({ ...https.globalAgent.options });
  agent.defaultPort = port;
  const httpBase = new HttpBase();
  httpBase.setOptions({ http: { agent } });
  return { transport: new ProvisioningHttp(httpBase), agent };
}

// makeMqttTransport is the SDK's MQTT transport (name "Mqtt", default
// port 8883) or MQTT-over-WebSocket transport ("MqttWs", default port 443,
// path /$iothub/websocket). Neither has a port option either: at a port
// other than the default the hook overrides the one method that builds the
// broker URI, nothing else.
function makeMqttTransport(name, port) {
  const { Mqtt, MqttWs } = require('azure-iot-provisioning-device-mqtt');
  if (name === 'Mqtt') {
    if (port === 8883) return new Mqtt();
    class PortMqtt extends Mqtt {
      _getConnectionUri(request) { return 'mqtts://' + request.provisioningHost + ':' + port; }
    }
    return new PortMqtt();
  }
  if (port === 443) return new MqttWs();
  class PortMqttWs extends MqttWs {
    _getConnectionUri(request) { return 'wss://' + request.provisioningHost + ':' + port + '/$iothub/websocket'; }
  }
  return new PortMqttWs();
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
// finish prints the report as one JSON line and exits 0 or 1, once.
function finish(report, agent) {
  if (finished) return;
  finished = true;
  if (agent) agent.destroy();
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(report.ok ? 0 : 1));
}

module.exports = { makeTransport, makeMqttTransport, errorReport, finish };
