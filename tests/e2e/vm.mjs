// What the tests that boot the appliance image in qemu share (appliance.test.mjs,
// update.nightly.mjs): the host address the guest reaches fleetd on, the provisioning file, and
// a VM booted with image/boot whose kiosk status lines are read from its serial console.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Child, ROOT, fleetdJson, waitFor } from './harness.mjs';
import { Qmp } from './qmp.mjs';

/** Timeouts scale: a VM without KVM is this much slower than the host. */
export const TCG = 8;

/** This machine's first non-loopback IPv4 address: where the guest reaches fleetd. */
export function hostAddress() {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs || []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address for the guest to reach fleetd on');
}

/** Prints and returns the seconds since `t0`, as a measured figure. */
export function timed(what, t0, prefix = 'appliance') {
  const s = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`MEASURED ${prefix} ${what}: ${s} s`);
  return Number(s);
}

/**
 * Writes a provisioning file for `image` pointing at `fleetd` (on `address`) with a new
 * enrolment code for `room`, and puts it on the image's ESP.
 */
export function provision(fleetd, address, image, file, room = 'Exam Room 2') {
  const { token } = fleetdJson(fleetd, 'device', 'enrol-token', '--clinic', 'Maple Valley Clinic', '--room', room);
  fs.writeFileSync(file, [
    `server = "https://${address}:${fleetd.web}/"`,
    `mqtt = "mqtts://${address}:${fleetd.mqtt}"`,
    `fleet_ca = """${fs.readFileSync(fleetd.ca, 'utf8')}"""`,
    `enrol_code = "${token}"`,
    'profile = "qemu"', ''].join('\n'));
  execFileSync('bash', [path.join(ROOT, 'image/provision'), image, file], { stdio: ['ignore', 'inherit', 'inherit'] });
}

/** The appliance image booted with image/boot in run directory `run`. */
export class Vm {
  constructor(image, run) {
    this.image = image;
    this.run = run;
    this.child = null;
    this.qmp = null;
    this.bootStart = 0;
  }

  /** Boots (`extra`: image/boot options, e.g. --resume) and connects to QMP. */
  async boot(name, extra = []) {
    // A socket left by a killed qemu must not be taken for the new one's.
    fs.rmSync(path.join(this.run, 'qmp.sock'), { force: true });
    this.child = new Child(name, 'bash', [path.join(ROOT, 'image/boot'), this.image, '--dir', this.run, ...extra]);
    this.bootStart = Date.now();
    const vm = this.child;
    await waitFor('the VM\'s QMP socket', () => vm.exitedNow() ? 'exited' : fs.existsSync(path.join(this.run, 'qmp.sock')), 60000);
    if (vm.exitedNow()) throw new Error(`image/boot exited: ${vm.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    this.qmp = await Qmp.connect(path.join(this.run, 'qmp.sock'));
  }

  /** Kills qemu as a power cut would. */
  async powerCut() {
    this.qmp?.close();
    this.child.proc.kill('SIGKILL');
    await this.child.exited;
  }

  /** The serial console so far (the kiosk's status lines and, with the whole journal forwarded, the rest). */
  serial() {
    const file = path.join(this.run, 'serial.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  }

  /** The kiosk's status lines of one kind: its stdout goes to the console too (its unit). */
  events(kind) {
    return this.serial().split('\n')
      .filter((l) => l.includes('"event":'))
      // The JSON object after the journal's prefix (its keys come in any order).
      .map((l) => { try { return JSON.parse(l.slice(l.indexOf('{'))); } catch { return null; } })
      .filter((e) => e && e.event === kind);
  }

  screen() {
    return this.events('screen').slice(-1)[0]?.screen;
  }

  exitedNow() {
    return this.child?.exitedNow();
  }

  async stop() {
    this.qmp?.close();
    await this.child?.stop();
  }
}
