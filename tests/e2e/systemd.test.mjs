// The kiosk as systemd runs it on the appliance: its unit's exposure (systemd-analyze security,
// offline), and the notify protocol the unit relies on (Type=notify, WatchdogSec): READY=1 once
// the first screen is up, then WATCHDOG=1 pings while it runs, STOPPING=1 on the way out.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Child, ROOT, enrolKiosk, requireParts, startFleetd, startSwtpm, waitFor } from './harness.mjs';

const UNIT = path.join(ROOT, 'image/systemd/telekiosk.service');

/** Receives sd_notify datagrams on a socket path and prints each one as a line. */
function notifyListener(socketPath) {
  const script = [
    'import socket, sys',
    'sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `sock.bind(${JSON.stringify(socketPath)})`,
    'print("listening", flush=True)',
    'while True:',
    '    for line in sock.recv(4096).decode().splitlines():',
    '        print(line, flush=True)',
  ].join('\n');
  return new Child('sd-notify', '/usr/bin/python3', ['-c', script]);
}

describe('the kiosk under systemd', () => {
  let fleetd; let tpm; let kiosk; let listener;

  before(async () => {
    requireParts();
    for (const tool of ['/usr/bin/systemd-analyze', '/usr/bin/python3']) {
      assert.ok(fs.existsSync(tool), `${tool} is missing: run .ci/deps`);
    }
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-notify-')), 'notify');
    listener = notifyListener(socketPath);
    await listener.waitLine('listening', (l) => l === 'listening', 10000);
    fleetd = await startFleetd('dr-systemd', 'correct horse battery staple');
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm, undefined, {
      name: 'telekiosk-systemd',
      env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '2000000' },
    }));
  });

  after(async () => {
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
    await listener?.stop();
  });

  it('the unit runs the kiosk with an exposure of at most 2.0', () => {
    const out = execFileSync('/usr/bin/systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT],
      { encoding: 'utf8' });
    const exposure = Number(/Overall exposure level for telekiosk\.service: ([0-9.]+)/.exec(out)?.[1]);
    console.log(`MEASURED systemd-analyze security exposure of telekiosk.service: ${exposure}`);
    assert.ok(exposure <= 2.0, `exposure ${exposure} is above 2.0:\n${out}`);
    const unit = fs.readFileSync(UNIT, 'utf8');
    for (const line of ['Type=notify', 'WatchdogSec=', 'User=telekiosk', 'MemoryDenyWriteExecute=yes']) {
      assert.ok(unit.includes(line), `the unit lacks ${line}`);
    }
  });

  it('says READY=1 once its first screen is up, then pings the watchdog, and STOPPING=1 on exit', async () => {
    await kiosk.waitScreen('idle', 30000);
    await listener.waitLine('READY=1', (l) => l === 'READY=1', 10000);
    const pings = () => listener.lines.filter((l) => l === 'WATCHDOG=1').length;
    const first = pings();
    await waitFor('three more watchdog pings', () => pings() - first >= 3, 5000);
    await kiosk.stop();
    await listener.waitLine('STOPPING=1', (l) => l === 'STOPPING=1', 10000);
  });
});
