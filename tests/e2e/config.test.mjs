// Fleet config and commands end to end: an admin edits a clinic's config with the CLI, rolls it
// out, and the kiosk (enrolled with its swtpm-held key) verifies fleetd's signature and applies
// it live; a config out of range is refused before it leaves fleetd; a signed identify command
// reaches the screen; a hardware probe's report reaches fleetd. Every part real: fleetd + mosquitto, swtpm, telekiosk.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, enrolKiosk, fleetdJson, requireParts, startFleetd, startSwtpm } from './harness.mjs';

const GROUP = 'Maple Valley Clinic';

function bodyFile(body) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-cfg-')), 'body.json');
  fs.writeFileSync(file, JSON.stringify(body));
  return file;
}

describe('fleet config and commands', () => {
  let fleetd; let tpm; let kiosk; let deviceId;

  before(async () => {
    requireParts();
    fleetd = await startFleetd('dr-cfg', 'config-password-1');
    tpm = await startSwtpm();
    ({ kiosk, deviceId } = await enrolKiosk(fleetd, tpm));
    await kiosk.waitScreen('idle');
  });

  after(async () => {
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  it('a rolled-out config is verified and applied live by the kiosk', async () => {
    const file = bodyFile({ clinic_name: 'Riverside Health', room_name: 'Room 7', wait_timeout_secs: 600 });
    fleetdJson(fleetd, 'config', 'set', '--group', GROUP, '--file', file);
    const mark = kiosk.lines.length;
    fleetdJson(fleetd, 'config', 'rollout', '--group', GROUP);
    const line = await kiosk.waitLine('config applied', (l) => l.includes('"event":"config"'), 30000, mark);
    const decision = JSON.parse(line);
    assert.equal(decision.outcome, 'applied', line);
    assert.ok(decision.version >= 1);
    await kiosk.screenshot('4-kiosk-after-config');
  });

  it('fleetd refuses an out-of-range config naming the field, and nothing is sent', () => {
    const file = bodyFile({ clinic_name: 'Riverside Health', speaker_volume_pct: 150 });
    let err;
    try {
      execFileSync(path.join(BIN, 'fleetd'), ['config', 'set', '--group', GROUP, '--file', file,
        '--data-dir', fleetd.dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'an out-of-range config was accepted');
    assert.match(err.stderr.toString(), /speaker_volume_pct/);
    assert.ok(!kiosk.lines.some((l) => l.includes('"outcome":"refused"')), 'something reached the kiosk');
  });

  it('the kiosk reports the applied version back to fleetd', async () => {
    const device = await (async () => {
      for (let i = 0; i < 100; i++) {
        const d = fleetdJson(fleetd, 'device', 'show', deviceId);
        if (JSON.stringify(d).includes('"config_version":') && !JSON.stringify(d).includes('"config_version":0')) return d;
        await new Promise((r) => setTimeout(r, 200));
      }
      return fleetdJson(fleetd, 'device', 'show', deviceId);
    })();
    assert.doesNotMatch(JSON.stringify(device), /"config_version":0\b/, JSON.stringify(device));
  });

  it('a signed identify command reaches the kiosk screen', async () => {
    const mark = kiosk.lines.length;
    fleetdJson(fleetd, 'device', 'cmd', deviceId, 'identify', '--seconds', '5');
    await kiosk.waitLine('identify shown', (l) => l.includes('"event":"identify"') && l.includes('"on":true'), 20000, mark);
    await kiosk.screenshot('4-kiosk-identify');
  });

  it('a hardware probe runs on the kiosk and its report is the command result fleetd keeps', () => {
    const info = fleetdJson(fleetd, 'device', 'cmd', deviceId, 'probe', '--wait', '120');
    assert.equal(info.status, 'answered', JSON.stringify(info));
    assert.equal(info.result.outcome, 'done', info.result.detail);
    const report = JSON.parse(info.result.detail);
    const x264 = report.encoders.find((e) => e.name === 'x264enc');
    assert.equal(x264.outcome.status, 'encoded', JSON.stringify(x264));
    assert.equal(x264.outcome.frames, 150, 'five seconds of 720p30');
    assert.ok(x264.outcome.fps > 0 && x264.outcome.cpu_percent > 0, JSON.stringify(x264));
    assert.ok(report.encoders.some((e) => e.outcome.status === 'missing'), 'this machine has no VPU');
    assert.equal(report.tpm.ok, true, `the kiosk's own TPM connection answers: ${report.tpm.detail}`);
    assert.ok(report.suggestion.profile, `a shipped profile fits this x86-64 machine: ${report.suggestion.why}`);
    console.log(`probe on this machine: x264enc ${x264.outcome.fps} fps flat out, `
      + `${x264.outcome.cpu_percent} % of a core at 30 fps; suggested ${report.suggestion.profile}`);
    const shown = fleetdJson(fleetd, 'device', 'show', deviceId);
    const kept = shown.commands.find((c) => c.command_id === info.command_id);
    assert.equal(kept.result.detail, info.result.detail, 'the device page shows the same report');
  });
});
