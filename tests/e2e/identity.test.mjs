// Device identity end to end: a kiosk whose key lives in a (software) TPM enrols, keeps its
// identity across restarts of itself and of the TPM, shows the service screen when the TPM is
// gone, and is cut off when revoked. Every part real: fleetd + mosquitto, swtpm, telekiosk.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Kiosk, enrolKiosk, fleetdJson, requireParts, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

describe('device identity in the TPM', () => {
  let fleetd; let tpm; let kiosk; let deviceId; let stateDir;

  before(async () => {
    requireParts();
    fleetd = await startFleetd('dr-id', 'identity-password-1');
    tpm = await startSwtpm();
    ({ kiosk, deviceId, stateDir } = await enrolKiosk(fleetd, tpm));
  });

  after(async () => {
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  it('enrolment gives the kiosk an active certificate with its device id', () => {
    const device = fleetdJson(fleetd, 'device', 'show', deviceId);
    assert.equal(device.status, 'active');
    assert.match(device.id, /^dev-[a-z2-7]{10}$/);
    assert.ok(device.cert_serial, 'no certificate serial recorded');
  });

  it('a kiosk restart keeps the same identity without enrolling again', async () => {
    await kiosk.stop();
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: 'telekiosk-restart' }); // no enrolment code
    await kiosk.waitOnline();
    const devices = fleetdJson(fleetd, 'device', 'list');
    assert.equal(devices.length, 1, 'the restart enrolled a second device');
  });

  it('a TPM restart with its state keeps the same identity', async () => {
    await kiosk.stop();
    await tpm.stop();
    tpm = await startSwtpm(tpm.dir);
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: 'telekiosk-tpm-restart' });
    await kiosk.waitOnline();
    assert.equal(fleetdJson(fleetd, 'device', 'list').length, 1);
  });

  it('without its TPM the kiosk shows the service screen instead of crashing', async () => {
    await kiosk.stop();
    await tpm.stop();
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: 'telekiosk-no-tpm' });
    await kiosk.waitScreen('out_of_service', 30000);
    const [service] = kiosk.events('screen').filter((e) => e.screen === 'out_of_service');
    assert.match(service.message, /TPM/);
    await kiosk.screenshot('3-kiosk-needs-service');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(kiosk.proc.exitCode, null, 'the kiosk exited instead of showing the service screen');
    assert.ok(!kiosk.lines.some((l) => l.includes('"online":true')), 'connected without its TPM key');
    await kiosk.stop();
    tpm = await startSwtpm(tpm.dir);
  });

  it('revoking the device closes its open connection and refuses the next', async () => {
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: 'telekiosk-revoked' });
    await kiosk.waitOnline();
    const mark = kiosk.lines.length;
    fleetdJson(fleetd, 'device', 'revoke', deviceId);
    await kiosk.waitLine('fleet link down after revocation', (l) => l.includes('"online":false'), 20000, mark);
    // It keeps trying with back-off; every attempt must now be refused.
    await new Promise((r) => setTimeout(r, 8000));
    const lastFleet = kiosk.events('fleet').pop();
    assert.equal(lastFleet.online, false, 'a revoked kiosk got back online');
    await waitFor('the refusal in the kiosk log', () => /certificate|handshake|tls|refused|closed/i.test(kiosk.stderr), 5000);
  });
});
