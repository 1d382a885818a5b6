// The boot-time update check (image/rootfs/usr/libexec/telekiosk/update-check) with RAUC's own
// boot-loader backend, as the Yocto images run it (update.conf: BOOT_BACKEND=rauc): the real
// script and its library, run as root in a private mount namespace whose /usr is an overlay, so
// the files it reads (update.conf, os-release, /proc/cmdline) are the test's and nothing on this
// machine changes. `rauc` and `systemctl` there are stand-ins that write down how they were
// called (RAUC cannot switch slots on this machine; the VM test `update.nightly.mjs` runs the
// real ones with the Debian image's systemd-boot backend).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './harness.mjs';

const SCRIPTS = path.join(ROOT, 'image/rootfs/usr/libexec/telekiosk');

// Sets the namespace up, runs update-check, and (for a trial) plays the kiosk: writes `healthy`
// after HEALTHY_AFTER seconds unless it is "never"; then waits until the check has concluded.
const RUN = String.raw`
set -eu
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$W/upper,workdir=$W/work" /usr
mount --bind "$W/cmdline" /proc/cmdline
install -d /usr/libexec/telekiosk /usr/lib/telekiosk
install -m 0755 "$SCRIPTS/update-check" "$SCRIPTS/update-lib.sh" /usr/libexec/telekiosk/
printf 'BOOT_BACKEND=rauc\nUPDATE_DIR=%s\nKIOSK_USER=root\n' "$W/update" > /usr/lib/telekiosk/update.conf
printf 'ID=telekiosk\nIMAGE_VERSION="%s"\n' "$RUNNING" > /usr/lib/os-release
for tool in rauc systemctl; do
  printf '#!/bin/sh\necho "%s $*" >> %s/calls\n' "$tool" "$W" > "/usr/bin/$tool"
  chmod 0755 "/usr/bin/$tool"
done
cat >> /usr/bin/rauc <<'EOF'
[ "$*" = "status --output-format=shell" ] && printf "RAUC_SYSTEM_COMPATIBLE='telekiosk'\nRAUC_SYSTEM_BOOTED_BOOTNAME='B'\n"
exit 0
EOF
/usr/libexec/telekiosk/update-check
case $HEALTHY_AFTER in
  never) ;;
  *) sleep "$HEALTHY_AFTER"; touch "$W/update/healthy" ;;
esac
# The waiter (left behind on a trial) marks the slot good or bad: wait for either.
for _ in $(seq 1 50); do
  grep -q '"trial":true' "$W/update/boot.json" || break
  [ -e "$W/update/trial.result" ] && grep -q 'systemctl' "$W/calls" 2>/dev/null && break
  sleep 0.2
done
`;

/** Runs the check once: this boot runs `running`; `trial` is the kiosk's trial.json, if any. */
function boot({ running, trial, cmdline = 'console=ttyS0 quiet', healthyAfter = 'never' }) {
  const w = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-update-check-'));
  for (const d of ['upper', 'work', 'update']) fs.mkdirSync(path.join(w, d));
  fs.writeFileSync(path.join(w, 'cmdline'), `${cmdline}\n`);
  if (trial) fs.writeFileSync(path.join(w, 'update/trial.json'), JSON.stringify(trial));
  const log = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', RUN], {
    env: { PATH: process.env.PATH, W: w, SCRIPTS, RUNNING: running, HEALTHY_AFTER: String(healthyAfter) },
    encoding: 'utf8',
  });
  const read = (f) => (fs.existsSync(path.join(w, f)) ? fs.readFileSync(path.join(w, f), 'utf8') : null);
  const result = {
    log,
    bootJson: JSON.parse(read('update/boot.json')),
    trialResult: read('update/trial.result') && JSON.parse(read('update/trial.result')),
    calls: (read('calls') ?? '').split('\n').filter((l) => l && !l.startsWith('rauc status --output-format')),
  };
  fs.rmSync(w, { recursive: true, force: true });
  return result;
}

describe('the boot-time update check with RAUC\'s own boot loader backend (Yocto images)', () => {
  it('a boot of the version trial.json names is a trial; the kiosk reporting healthy marks the slot good', () => {
    const r = boot({ running: '2.0.0', trial: { version: '2.0.0', health_timeout_secs: 60 }, healthyAfter: 1 });
    // No rauc.slot= on the command line (RAUC's EFI backend): the slot is RAUC's answer.
    assert.deepEqual(r.bootJson, { slot: 'B', trial: false });
    assert.deepEqual(r.calls, ['rauc status mark-good booted']);
    assert.equal(r.trialResult, null);
    assert.match(r.log, /slot B \(2\.0\.0\) is on trial: the kiosk has 60 s to report healthy/);
    assert.match(r.log, /kiosk healthy after \d+ s: slot B marked good/);
  });

  it('a trial whose kiosk never reports healthy is marked bad, reported, and the kiosk rebooted', () => {
    const r = boot({ running: '3.0.0', trial: { version: '3.0.0', health_timeout_secs: 3 }, cmdline: 'rauc.slot=A ro' });
    assert.deepEqual(r.trialResult, {
      version: '3.0.0', slot: 'A', ok: false, error: 'the kiosk did not report healthy within 3 s',
    });
    assert.deepEqual(r.calls, ['rauc status mark-bad booted', 'systemctl --no-block reboot']);
  });

  it('after a fall back to the old version (trial.json names another), the boot is no trial and nothing is marked', () => {
    const r = boot({ running: '2.0.0', trial: { version: '3.0.0', health_timeout_secs: 60 }, cmdline: 'rauc.slot=B' });
    assert.deepEqual(r.bootJson, { slot: 'B', trial: false });
    assert.deepEqual(r.calls, []);
    // The kiosk reports the failed version itself (its order names 3.0.0, 2.0.0 runs).
    assert.equal(r.trialResult, null);
  });

  it('an ordinary boot (no trial.json) is no trial', () => {
    const r = boot({ running: '2.0.0' });
    assert.deepEqual(r.bootJson, { slot: 'B', trial: false });
    assert.deepEqual(r.calls, []);
    assert.match(r.log, /running slot B, version 2\.0\.0/);
  });
});
