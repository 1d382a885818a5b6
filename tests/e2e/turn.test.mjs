// A clinic whose firewall lets nothing through but its TURN server: direct UDP between kiosk and
// clinician is dropped (nftables, root), fleetd is started with a TURN server (Debian's coturn,
// shared-secret credentials) and the relay-only policy, and the visit still runs — through the
// relay, with credentials fleetd minted for this visit.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ARTIFACTS, Child, consoleInbound, enrolKiosk, freePort, requireParts, signIn,
  startBrowser, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-turn';
const PASSWORD = 'correct horse battery staple';
const TABLE = 'telekiosk_e2e_turn';
const RELAY_PORTS = [49160, 49200];

/** coturn on loopback with a shared secret, relaying between loopback peers. */
async function startCoturn(secret) {
  const port = await freePort();
  const child = new Child('coturn', '/usr/bin/turnserver', ['-n', '--log-file=stdout', '--simple-log',
    '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
    `--min-port=${RELAY_PORTS[0]}`, `--max-port=${RELAY_PORTS[1]}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=telekiosk.test',
    '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--no-tcp-relay']);
  await child.waitLine('listening', (l) => /listener opened on|Total General servers/i.test(l), 15000);
  return Object.assign(child, { port });
}

/** Drops UDP on loopback except to and from the TURN server and its relay ports. */
function blockDirectUdp(turnPort) {
  const [lo, hi] = RELAY_PORTS;
  execFileSync('nft', ['-f', '-'], {
    input: `table inet ${TABLE} {
  chain input {
    type filter hook input priority 0;
    iifname "lo" udp dport { ${turnPort}, ${lo}-${hi} } accept
    iifname "lo" udp sport { ${turnPort}, ${lo}-${hi} } accept
    iifname "lo" meta l4proto udp drop
  }
}
`,
  });
}

describe('a visit through TURN when direct UDP is blocked', () => {
  let coturn; let fleetd; let tpm; let kiosk; let browser; let page; let secret;

  before(async () => {
    requireParts();
    try { execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' }); } catch { /* none */ }
    secret = `e2e-${Math.random().toString(36).slice(2)}`;
    const secretFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-turn-')), 'turn-secret');
    fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    coturn = await startCoturn(secret);
    fleetd = await startFleetd(USER, PASSWORD, {
      args: ['--turn-url', `turn:127.0.0.1:${coturn.port}`, '--turn-secret-file', secretFile,
        '--turn-relay-only'],
    });
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm, undefined, { name: 'telekiosk-turn' }));
    browser = await startBrowser();
    page = await signIn(browser, fleetd, USER, PASSWORD);
    blockDirectUdp(coturn.port);
  });

  after(async () => {
    try { execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' }); } catch { /* none */ }
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
    await coturn?.stop();
  });

  it('media flows both ways over a relayed pair, with credentials minted for the visit', async () => {
    await kiosk.waitScreen('idle', 30000);
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    await page.locator('button.join').first().click({ timeout: 15000 });
    await kiosk.waitScreen('in_call', 30000);
    const frames = async () => (await consoleInbound(page))?.framesDecoded ?? 0;
    await waitFor('console frames through the relay', async () => (await frames()) >= 30, 20000);
    const kioskStart = kiosk.stats().remote_video_frames;
    await waitFor('kiosk frames through the relay', () => kiosk.stats().remote_video_frames - kioskStart >= 30, 20000);
    // The pair in use is relayed, and the credentials were this visit's, not a standing account.
    const pair = await page.evaluate(async () => {
      const stats = await window.telekiosk.pc.getStats();
      let selected = null;
      stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) selected = r.selectedCandidatePairId; });
      const p = stats.get(selected);
      return { local: stats.get(p.localCandidateId).candidateType, remote: stats.get(p.remoteCandidateId).candidateType };
    });
    console.log(`MEASURED selected pair through TURN: local ${pair.local}, remote ${pair.remote}`);
    assert.equal(pair.local, 'relay');
    const { username } = await page.evaluate(() => window.telekiosk.pc.getConfiguration().iceServers[0]);
    const [expiry, who] = username.split(':');
    const hours = (Number(expiry) - Date.now() / 1000) / 3600;
    assert.match(who, /^[0-9a-f-]{36}-console$/, `not a per-visit TURN user name: ${username}`);
    assert.ok(hours > 5 && hours <= 6, `TURN credentials valid for ${hours.toFixed(2)} h`);
    for (const log of ['fleetd.log', 'telekiosk-turn.log']) {
      assert.ok(!fs.readFileSync(path.join(ARTIFACTS, log), 'utf8').includes(secret), `${log} holds the TURN secret`);
    }
    await page.click('#end');
    await kiosk.waitScreen('ended', 15000);
  });
});
