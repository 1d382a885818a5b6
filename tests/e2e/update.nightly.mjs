// OS updates on the real appliance, in qemu (TCG) with swtpm: the image of version 1.0.0 boots
// from slot A, enrols with fleetd on this machine, and fleetd rolls out bundles made by
// image/bundle. Every step prints its time. About 25 minutes under TCG on 2 cores, so it is not
// part of `.ci/run`: `.ci/bench` runs it (`node --test tests/e2e/update.nightly.mjs` alone).
//
//   1. A bundle signed by another CA: the kiosk fetches it, RAUC refuses it, the kiosk says why,
//      the rollout halts, nothing changes.
//   2. 2.0.0: fetched over mutual TLS, installed into B outside visits, rebooted into, reported
//      healthy and marked good; the kiosk reports 2.0.0 from slot B and the rollout completes.
//   3. 3.0.0, whose kiosk exits at start: qemu is killed during its install (a power cut) and
//      B still boots; the kiosk installs it again, reboots into it, it never becomes healthy,
//      the check marks it bad and the appliance goes back to 2.0.0 by itself; the kiosk
//      reports 3.0.0 failed and the rollout halts.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ARTIFACTS, BIN, ROOT, fleetdJson, requireParts, startFleetd, waitFor } from './harness.mjs';
import { TCG, Vm, hostAddress, provision, timed } from './vm.mjs';

const CACHE = path.join(os.homedir(), '.cache/telekiosk-image');
const WORK = path.join(CACHE, 'update-test');
const IMAGE = path.join(WORK, 'v1.img');
const RUN = path.join(WORK, 'run');
const GROUP = 'Maple Valley Clinic';
const MIN = 60000;

const run = (script, ...args) =>
  execFileSync('bash', [path.join(ROOT, script), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
const measured = (what, t0) => timed(what, t0, 'update');

describe('A/B OS updates of the appliance in a VM, with rollback', () => {
  const vm = new Vm(IMAGE, RUN);
  let fleetd; let deviceId;
  const os_ = () => fleetdJson(fleetd, 'device', 'show', deviceId).state?.os;
  const online = () => fleetdJson(fleetd, 'device', 'show', deviceId).state?.presence === 'online';
  const update = (id) => fleetdJson(fleetd, 'update', 'status', String(id));
  const kioskUpdate = (stage, version) => vm.events('update').some((e) => e.stage === stage && e.version === version);

  /** Waits for update rollout `id` to reach `status`, watching the VM. */
  async function until(id, status, ms) {
    return waitFor(`update ${id} ${status} (kiosk: ${JSON.stringify(os_())})`, () => {
      if (vm.exitedNow()) throw new Error('the VM stopped');
      const u = update(id);
      return u.status === status && u;
    }, ms, 2000);
  }

  before(async () => {
    requireParts();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.rmSync(WORK, { recursive: true, force: true });
    fs.mkdirSync(WORK, { recursive: true });
    const kiosk = path.join(BIN, 'telekiosk');
    let t0 = Date.now();
    run('image/build', '--binary', kiosk, '--version', '1.0.0', '--out', IMAGE);
    measured('image build (1.0.0)', t0);
    t0 = Date.now();
    run('image/bundle', '--binary', kiosk, '--version', '2.0.0', '--out', path.join(WORK, 'v2.raucb'));
    measured('bundle build (2.0.0)', t0);
    // A kiosk that exits at once: the new version never becomes healthy.
    run('image/bundle', '--binary', '/bin/false', '--version', '3.0.0', '--out', path.join(WORK, 'v3-broken.raucb'));
    // Signed by a CA the image does not trust.
    run('image/bundle-key', path.join(WORK, 'rogue-ca'), 'not the fleet');
    const rogue = (f) => path.join(WORK, 'rogue-ca', f);
    run('image/bundle', '--from', IMAGE, '--cert', rogue('signing.cert.pem'), '--key', rogue('signing.key.pem'),
      '--keyring', rogue('ca.cert.pem'), '--out', path.join(WORK, 'rogue.raucb'));
    console.log(`bundle sizes: ${['v2', 'v3-broken', 'rogue'].map((b) =>
      `${b} ${(fs.statSync(path.join(WORK, `${b}.raucb`)).size / 1048576).toFixed(0)} MiB`).join(', ')}`);

    const address = hostAddress();
    fleetd = await startFleetd('dr-update', 'correct horse battery staple',
      { listen: '0.0.0.0', host: address, args: ['--public-name', address] });
    fleetdJson(fleetd, 'update', 'add', path.join(WORK, 'rogue.raucb'), '--version', '1.0.0-rogue');
    fleetdJson(fleetd, 'update', 'add', path.join(WORK, 'v2.raucb'), '--version', '2.0.0');
    fleetdJson(fleetd, 'update', 'add', path.join(WORK, 'v3-broken.raucb'), '--version', '3.0.0');
    provision(fleetd, address, IMAGE, path.join(WORK, 'provision.toml'));
    t0 = Date.now();
    await vm.boot('vm-update');
    const pending = await waitFor('the kiosk asking to enrol', () => {
      if (vm.exitedNow()) throw new Error('the VM stopped');
      return fleetdJson(fleetd, 'device', 'list').find((d) => d.status === 'pending');
    }, 4 * TCG * MIN / 8, 2000);
    fleetdJson(fleetd, 'device', 'approve', pending.id);
    deviceId = pending.id;
    await waitFor('the kiosk online', online, 2 * MIN, 2000);
    measured('first boot → enrolled and online', t0);
  });

  after(async () => {
    await vm.stop();
    await fleetd?.stop();
    // The images, bundles and VM disks are about 6 GiB: kept only on request (TK_KEEP_TMP=1);
    // the serial console goes to the artifacts either way.
    const serial = path.join(RUN, 'serial.log');
    if (fs.existsSync(serial)) fs.copyFileSync(serial, path.join(ARTIFACTS, 'update-serial.log'));
    if (process.env.TK_KEEP_TMP !== '1') fs.rmSync(WORK, { recursive: true, force: true });
  });

  it('1.0.0 runs from slot A', async () => {
    const s = await waitFor('the kiosk reporting its OS', () => os_()?.slot && os_(), MIN, 2000);
    assert.deepEqual([s.version, s.slot, s.trial], ['1.0.0', 'A', false]);
  });

  it('a bundle signed by another key is refused; the rollout halts and nothing changes', async () => {
    const t0 = Date.now();
    const u = fleetdJson(fleetd, 'update', 'rollout', '--group', GROUP, '--version', '1.0.0-rogue',
      '--failure-threshold-percent', '0');
    const halted = await until(u.id, 'halted', 10 * MIN);
    measured('foreign bundle: rollout → refused by the kiosk', t0);
    const reason = halted.devices[0].reason;
    console.log(`foreign bundle refused: ${reason}`);
    assert.match(reason, /signature|certificate|verif/i);
    const s = os_();
    assert.deepEqual([s.version, s.slot, s.update], ['1.0.0', 'A', undefined]);
  });

  it('2.0.0 is fetched, installed into B, rebooted into, marked good, and the rollout completes', async () => {
    const t0 = Date.now();
    const u = fleetdJson(fleetd, 'update', 'rollout', '--group', GROUP, '--version', '2.0.0', '--health-timeout', '10m');
    await waitFor('the install starting', () => kioskUpdate('installing', '2.0.0'), 10 * MIN, 2000);
    measured('2.0.0: rollout → bundle fetched and checked, install started', t0);
    const t1 = Date.now();
    await waitFor('the kiosk on slot B', () => os_()?.slot === 'B', 15 * MIN, 2000);
    measured('2.0.0: install + reboot → kiosk back on slot B', t1);
    const done = await until(u.id, 'completed', 5 * MIN);
    assert.equal(done.waves[0].acked, 1);
    const s = await waitFor('slot B marked good', () => os_()?.trial === false && os_(), 5 * MIN, 2000);
    assert.deepEqual([s.version, s.slot, s.update], ['2.0.0', 'B', undefined]);
    // The last failed update is still the foreign bundle's: history, not this update.
    assert.notEqual(s.failed?.version, '2.0.0');
    measured('2.0.0: rollout → completed and marked good', t0);
  });

  it('a power cut during the install of 3.0.0 leaves B booting; 3.0.0 never becomes healthy and the appliance goes back by itself', async () => {
    const t0 = Date.now();
    const u = fleetdJson(fleetd, 'update', 'rollout', '--group', GROUP, '--version', '3.0.0',
      '--health-timeout', '1m', '--failure-threshold-percent', '0');
    await waitFor('the install of 3.0.0 starting', () => kioskUpdate('installing', '3.0.0'), 10 * MIN, 2000);
    await new Promise((r) => setTimeout(r, 45000)); // well into writing slot A
    await vm.powerCut();
    const t1 = Date.now();
    await vm.boot('vm-after-power-cut', ['--resume']);
    await waitFor('the kiosk online after the power cut', () => vm.screen() && online() && os_()?.slot === 'B', 5 * MIN, 2000);
    measured('power cut during install → 2.0.0 back online from B', t1);
    assert.equal(os_().version, '2.0.0');
    // The cut install is asked for again, completes, and the appliance reboots into 3.0.0, whose
    // kiosk exits at once; a minute later the check marks it bad and reboots into B.
    const halted = await until(u.id, 'halted', 25 * MIN);
    measured('3.0.0: rollout → rolled back by itself and reported', t0);
    const reason = halted.devices[0].reason;
    console.log(`3.0.0 failed: ${reason}`);
    assert.match(reason, /healthy|did not start/);
    const s = os_();
    assert.deepEqual([s.version, s.slot], ['2.0.0', 'B']);
    assert.equal(s.failed.version, '3.0.0');
    assert.ok(vm.serial().length > 0);
  });
});
