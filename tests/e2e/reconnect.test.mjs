// A visit survives what rural clinics see: the network dropping for a few seconds or half a
// minute, and fleetd crashing mid-visit. Every part is real (fleetd + its mosquitto, telekiosk,
// Debian's Chromium); an outage drops the call's media on loopback with nftables (root) while its
// signalling goes on. Each test prints what it measured.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ARTIFACTS, consoleInbound, crashAndRestartFleetd, enrolKiosk, requireParts, signIn,
  startBrowser, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-reconnect';
const PASSWORD = 'correct horse battery staple';
const TABLE = 'telekiosk_e2e_outage';

/**
 * The call's media path fails until `restore()`: every packet on loopback is dropped but those of
 * `keep` (TCP ports: fleetd's web and MQTT listeners, the software TPM). UDP and ICE-TCP alike, so
 * the media cannot find another way round; signalling stays up (its own outage is the fleetd test).
 */
function outage(keep) {
  const ports = keep.join(', ');
  execFileSync('nft', ['-f', '-'], {
    input: `table inet ${TABLE} {
  chain input {
    type filter hook input priority 0;
    iifname "lo" tcp dport { ${ports} } accept
    iifname "lo" tcp sport { ${ports} } accept
    iifname "lo" drop
  }
}
`,
  });
  return () => execFileSync('nft', ['delete', 'table', 'inet', TABLE]);
}

/** Resolves with the ms it took `read()` to rise by `by` (polled every 100 ms), or throws after `ms`. */
async function timeToRise(what, read, by, ms) {
  const t0 = performance.now();
  const start = await read();
  await waitFor(`${what} to rise by ${by}`, async () => (await read()) - start >= by, ms, 100);
  return Math.round(performance.now() - t0);
}

describe('visits that survive blips and a fleetd restart', () => {
  let fleetd; let tpm; let kiosk; let browser; let page;
  const kioskFrames = () => kiosk.stats().remote_video_frames;
  const consoleFrames = async () => (await consoleInbound(page))?.framesDecoded ?? 0;

  before(async () => {
    requireParts();
    try { execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' }); } catch { /* none left */ }
    fleetd = await startFleetd(USER, PASSWORD);
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm, undefined, { name: 'telekiosk-reconnect' }));
    browser = await startBrowser();
    page = await signIn(browser, fleetd, USER, PASSWORD);
  });

  after(async () => {
    try { execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' }); } catch { /* none */ }
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  async function startVisit() {
    await kiosk.waitScreen('idle', 30000);
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    await page.locator('button.join').first().click({ timeout: 15000 });
    await kiosk.waitScreen('in_call', 20000);
    await timeToRise('kiosk frames', kioskFrames, 20, 15000);
    await timeToRise('console frames', consoleFrames, 20, 15000);
  }

  /** Drops media for `secs`; returns how long after it came back each side decoded frames again. */
  async function blip(secs, backWithinMs) {
    const noticesBefore = kiosk.events('call_notice').length;
    const restore = outage([fleetd.web, fleetd.mqtt, tpm.port, tpm.port + 1]);
    try {
      await new Promise((r) => setTimeout(r, secs * 1000));
      // Both screens said so meanwhile, and neither ended the visit.
      const said = kiosk.events('call_notice').slice(noticesBefore).map((e) => e.text);
      assert.ok(said.some((t) => t.startsWith('Reconnecting')), `kiosk notices: ${JSON.stringify(said)}`);
      const consoleSays = await page.locator('#stage-notice').getAttribute('data-state');
      assert.equal(consoleSays, 'reconnecting', 'the console does not say it is reconnecting');
      assert.equal(kiosk.screen(), 'in_call');
      assert.equal(await page.locator('#call').isVisible(), true, 'the console left the call');
    } finally {
      restore();
    }
    const [kioskMs, consoleMs] = await Promise.all([
      timeToRise('kiosk frames after the outage', kioskFrames, 5, backWithinMs + 10000),
      timeToRise('console frames after the outage', consoleFrames, 5, backWithinMs + 10000),
    ]);
    console.log(`MEASURED ${secs} s outage: media back on the kiosk after ${kioskMs} ms, in the console after ${consoleMs} ms`);
    await page.screenshot({ path: path.join(ARTIFACTS, `reconnect-${secs}s-after.png`) });
    assert.ok(Math.max(kioskMs, consoleMs) <= backWithinMs,
      `media back after ${Math.max(kioskMs, consoleMs)} ms, more than ${backWithinMs} ms`);
    await waitFor('the kiosk notice cleared', () => kiosk.events('call_notice').at(-1)?.text === '', 5000);
  }

  it('a 5 s outage: both screens say "Reconnecting…", media is back within 2 s, the visit goes on', async () => {
    await startVisit();
    await blip(5, 2000);
  });

  it('a 30 s outage: the kiosk rebuilds its side and media is back within 10 s, same visit', async () => {
    await blip(30, 10000);
    assert.equal(kiosk.screen(), 'in_call');
  });

  it('fleetd killed mid-visit: frames keep flowing, and End works once it is back', async () => {
    const restarted = crashAndRestartFleetd(fleetd, 5000);
    // While fleetd is down (and after), media is peer to peer: both sides keep decoding.
    await timeToRise('kiosk frames with fleetd down', kioskFrames, 30, 8000);
    await timeToRise('console frames with fleetd down', consoleFrames, 30, 8000);
    assert.equal(kiosk.screen(), 'in_call');
    await page.locator('#link-state[data-state="lost"]').waitFor({ timeout: 5000 });
    fleetd = await restarted;
    // The console and the kiosk find fleetd again and the console has its visit back.
    await page.locator('#link-state[data-state="live"]').waitFor({ timeout: 30000 });
    await page.locator('#call-status', { hasText: 'Connected' }).waitFor({ timeout: 30000 });
    await timeToRise('console frames after fleetd is back', consoleFrames, 30, 8000);
    await page.screenshot({ path: path.join(ARTIFACTS, 'reconnect-fleetd-restarted.png') });
    await page.click('#end');
    await kiosk.waitScreen('ended', 15000);
    await page.locator('#queue-view').waitFor({ state: 'visible' });
  });
});
