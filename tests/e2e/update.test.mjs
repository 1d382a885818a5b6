// OS updates through fleetd with a real kiosk, on this machine: an admin adds a bundle and rolls
// it out; the kiosk (its state directory set up as an A/B appliance's, see image/UPDATES.md)
// fetches it over mutual TLS, checks it, asks for the install outside visits, and asks for the
// reboot. The test stands in for the appliance's root-owned units here (RAUC cannot write slots
// on this machine; the VM test `update.nightly.mjs` runs the real ones): it answers the install,
// "reboots" the kiosk into the new version, and the rollout completes. A second version whose
// install fails halts its rollout, and the console shows both with their waves.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ARTIFACTS, Kiosk, addUser, enrolKiosk, fleetdJson, nextTotp, requireParts, startBrowser, startFleetd, startSwtpm,
  waitFor,
} from './harness.mjs';

const GROUP = 'Maple Valley Clinic';

/** A file that starts like a RAUC bundle (squashfs magic): `mib` MiB of random bytes. */
function fakeBundle(dir, name, mib) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([Buffer.from('hsqs'), crypto.randomBytes(mib * 1048576 - 4)]));
  return file;
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('an OS update rollout reaches a kiosk, which fetches, installs and reboots into it', () => {
  let fleetd; let tpm; let kiosk; let deviceId; let stateDir; let osRelease; let browser; let work;
  const updateDir = () => path.join(stateDir, 'update');
  const read = (name) => fs.readFileSync(path.join(updateDir(), name), 'utf8');
  const there = (name) => fs.existsSync(path.join(updateDir(), name));

  /** The appliance as the kiosk sees it: its image version and the slot the update check wrote. */
  function appliance(version, slot, trial) {
    fs.writeFileSync(osRelease, `ID=debian\nIMAGE_ID=telekiosk\nIMAGE_VERSION=${version}\n`);
    fs.mkdirSync(updateDir(), { recursive: true });
    fs.writeFileSync(path.join(updateDir(), 'boot.json'), JSON.stringify({ slot, trial }));
  }

  const osState = () => fleetdJson(fleetd, 'device', 'show', deviceId).state?.os;
  const update = (id) => fleetdJson(fleetd, 'update', 'status', String(id));

  before(async () => {
    requireParts();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-update-'));
    fleetd = await startFleetd('dr-update', 'correct horse battery staple');
    tpm = await startSwtpm();
    stateDir = path.join(work, 'state');
    osRelease = path.join(work, 'os-release');
    appliance('1.0', 'A', false);
    ({ kiosk, deviceId } = await enrolKiosk(fleetd, tpm, stateDir, { env: { TELEKIOSK_OS_RELEASE: osRelease } }));
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  it('the kiosk reports its running version and slot', async () => {
    const s = await waitFor('the kiosk reporting its OS', () => osState(), 15000, 250);
    assert.deepEqual([s.version, s.slot, s.trial], ['1.0', 'A', false]);
    // Healthy (enrolled, connected, TPM working): the update check is told.
    await waitFor('the healthy file', () => there('healthy'), 10000);
  });

  it('a rollout of 2.0: fetched, checked, installed, rebooted into, and the rollout completes', async () => {
    const bundle = fakeBundle(work, 'v2.raucb', 24);
    const added = fleetdJson(fleetd, 'update', 'add', bundle, '--version', '2.0');
    assert.equal(added.sha256, sha256(bundle));
    const started = fleetdJson(fleetd, 'update', 'rollout', '--group', GROUP, '--version', '2.0', '--health-timeout', '5m');
    const t0 = Date.now();
    await waitFor('the kiosk asking for the install', () => there('install.request'), 60000, 200);
    console.log(`MEASURED update: order → 24 MiB fetched over mutual TLS, checked, install asked: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(JSON.parse(read('install.request')), { version: '2.0', bundle: 'bundle.raucb' });
    assert.equal(sha256(path.join(updateDir(), 'bundle.raucb')), added.sha256, 'the bundle the kiosk kept is the one fleetd has');
    assert.ok(!there('bundle.raucb.part'));
    assert.equal(osState().update.phase, 'installing');

    // The install unit's answer; the kiosk then asks for the reboot (no opening hours set: any
    // moment without a patient will do), with how long 2.0 has to become healthy.
    fs.writeFileSync(path.join(updateDir(), 'install.result'), JSON.stringify({ version: '2.0', ok: true }));
    await waitFor('the kiosk asking for the reboot', () => there('reboot.request'), 10000);
    assert.deepEqual(JSON.parse(read('trial.json')), { version: '2.0', health_timeout_secs: 300 });

    // The reboot: the update check removes `healthy` and writes boot.json; 2.0 runs from B.
    await kiosk.stop();
    for (const f of ['reboot.request', 'install.request', 'healthy']) fs.rmSync(path.join(updateDir(), f), { force: true });
    appliance('2.0', 'B', true);
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: 'telekiosk-2.0', env: { TELEKIOSK_OS_RELEASE: osRelease } });
    await kiosk.waitOnline();
    await waitFor('the new version reporting healthy', () => there('healthy'), 15000);
    const u = await waitFor('the rollout completing', () => {
      const x = update(started.id);
      return x.status === 'completed' && x;
    }, 20000, 250);
    assert.equal(u.waves[0].acked, 1);
    const s = osState();
    assert.deepEqual([s.version, s.slot, s.trial, s.update, s.failed], ['2.0', 'B', true, undefined, undefined]);
  });

  it('a rollout of 3.0 whose install fails halts, and the kiosk says why', async () => {
    fleetdJson(fleetd, 'update', 'add', fakeBundle(work, 'v3.raucb', 2), '--version', '3.0');
    const started = fleetdJson(fleetd, 'update', 'rollout', '--group', GROUP, '--version', '3.0', '--failure-threshold-percent', '0');
    await waitFor('the kiosk asking for the install', () => there('install.request') && JSON.parse(read('install.request')).version === '3.0', 60000, 200);
    const error = 'signature verification failed: the bundle is not signed by a key this kiosk trusts';
    fs.writeFileSync(path.join(updateDir(), 'install.result'), JSON.stringify({ version: '3.0', ok: false, error }));
    const u = await waitFor('the rollout halting', () => {
      const x = update(started.id);
      return x.status === 'halted' && x;
    }, 20000, 250);
    assert.match(u.halt_reason, /1 of 1 devices/);
    assert.equal(u.devices[0].reason, `the install of version 3.0 failed: ${error}`);
    assert.ok(!there('bundle.raucb'), 'the refused bundle is removed');
    assert.equal(osState().version, '2.0', 'still running 2.0');
    assert.ok(!there('reboot.request'), 'no reboot after a failed install');
  });

  it('the admin console shows the updates with their waves, and the kiosk\'s OS', async () => {
    addUser(fleetd, 'ada', 'correct horse battery staple', { role: 'admin', totp: true });
    browser = await startBrowser();
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(fleetd.url);
    await page.fill('#username', 'ada');
    await page.fill('#password', 'correct horse battery staple');
    await page.click('#signin');
    await page.waitForSelector('#code-form', { state: 'visible' });
    await page.fill('#code', await nextTotp(fleetd, 'ada'));
    await page.click('#code-submit');
    page.on('console', (m) => fs.appendFileSync(path.join(ARTIFACTS, 'admin-updates-page.log'), `${m.type()}: ${m.text()}\n`));
    await page.goto(new URL('/admin#rollouts', fleetd.url).href);
    await page.waitForSelector('#update-list .rollout').catch(async (e) => {
      await page.screenshot({ path: path.join(ARTIFACTS, 'admin-updates-failed.png'), fullPage: true });
      throw e;
    });
    const cards = await page.locator('#update-list .rollout').allTextContents();
    assert.equal(cards.length, 2);
    assert.match(cards[0], /OS 3\.0[\s\S]*halted[\s\S]*Halted: 1 of 1 devices/);
    assert.match(cards[1], /OS 2\.0[\s\S]*completed[\s\S]*1 updated/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-updates.png'), fullPage: true });
    await page.goto(new URL(`/admin#device/${deviceId}`, fleetd.url).href);
    await page.waitForFunction(() => document.querySelector('#device-os')?.textContent.includes('2.0'));
    const facts = await page.locator('#device-os').textContent();
    assert.match(facts, /Slot\s*B \(on trial/);
    assert.match(facts, /3\.0: the install of version 3\.0 failed/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-device-os.png'), fullPage: true });
  });
});
