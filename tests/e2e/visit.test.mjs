// A patient presses Join on the kiosk and sees and hears a clinician in a browser — end to end,
// every part real: fleetd + mosquitto, telekiosk (headless, dev profile), Debian's Chromium.
// Each step asserts what a person would notice: the screens shown and media actually flowing.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS, consoleBars, consoleCodecs, consoleInbound, consoleProtection, enrolKiosk, publishRaw, requireParts, rising, signIn, startBrowser,
  startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-e2e';
const PASSWORD = 'correct horse battery staple';

describe('walking skeleton: a visit from Join to End', () => {
  let fleetd; let tpm; let kiosk; let deviceId; let browser; let page;

  before(async () => {
    requireParts();
    fleetd = await startFleetd(USER, PASSWORD);
    tpm = await startSwtpm();
    ({ kiosk, deviceId } = await enrolKiosk(fleetd, tpm));
    browser = await startBrowser();
    page = await signIn(browser, fleetd, USER, PASSWORD);
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  /** Patient taps Join; the clinician sees the kiosk waiting and joins; media starts. */
  async function startVisit(shotPrefix) {
    await kiosk.waitScreen('idle');
    if (shotPrefix) await kiosk.screenshot(`${shotPrefix}kiosk-idle`);
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    const row = await page.locator('#queue').innerText();
    assert.match(row, /Maple Valley Clinic/);
    assert.match(row, /Exam Room 2/);
    if (shotPrefix) {
      await new Promise((r) => setTimeout(r, 1000)); // the self-view's first frames
      // The patient's own picture is on screen: the kiosk refuses to capture it.
      assert.match(await kiosk.screenshotRefused(`${shotPrefix}kiosk-waiting`), /never capture a visit/);
      await page.screenshot({ path: path.join(ARTIFACTS, `${shotPrefix}console-queue.png`) });
    }
    await join.click();
    await kiosk.waitScreen('in_call', 20000);
    await page.locator('#call').waitFor({ state: 'visible' });
  }

  it('kiosk process can write no core dump and is not swappable', () => {
    const limits = fs.readFileSync(`/proc/${kiosk.proc.pid}/limits`, 'utf8');
    assert.match(limits, /Max core file size\s+0\s+0\s/);
    const status = fs.readFileSync(`/proc/${kiosk.proc.pid}/status`, 'utf8');
    assert.ok(Number(/VmLck:\s+(\d+)/.exec(status)[1]) > 0, 'kiosk memory is not locked');
  });

  it('kiosk decodes the clinician video and audio, through its touchscreen', async () => {
    await startVisit('1-');
    await rising('kiosk: clinician video frames decoded', () => kiosk.stats().remote_video_frames, 30);
    await rising('kiosk: clinician audio buffers played', () => kiosk.stats().remote_audio_buffers, 20);
  });

  it('clinician browser decodes the kiosk video and hears its audio', async () => {
    await rising('console: kiosk video framesDecoded', async () => (await consoleInbound(page)).framesDecoded, 30);
    await rising('console: kiosk audio packets', async () => (await consoleInbound(page)).audioPackets, 50);
    await rising('console: kiosk audio energy', async () => (await consoleInbound(page)).audioEnergy * 1000, 1);
    // The kiosk offers H.264 first and VP8 beside it: Chromium decodes H.264.
    assert.equal((await consoleCodecs(page)).video, 'video/H264');
    // Every frame came through the end-to-end encryption, none failed, and the picture is the
    // kiosk's test pattern (its colours), not ciphertext decoded as video.
    const e2ee = await consoleProtection(page);
    assert.ok(e2ee.opened > 100 && e2ee.sealed > 100 && e2ee.authFailures === 0, JSON.stringify(e2ee));
    const kioskSide = kiosk.stats();
    assert.ok(kioskSide.e2ee_sealed > 100 && kioskSide.e2ee_opened > 100 && kioskSide.e2ee_auth_failures === 0,
      JSON.stringify(kioskSide));
    assert.match(e2ee.code, /^\d{5}( \d{5}){4}$/);
    const bars = await consoleBars(page);
    const [r, g, b] = bars.yellow;
    assert.ok(r > 150 && g > 150 && b < 90, `yellow bar: ${JSON.stringify(bars)}`);
    const [cr, cg, cb] = bars.cyan;
    assert.ok(cr < 90 && cg > 150 && cb > 150, `cyan bar: ${JSON.stringify(bars)}`);
    await new Promise((r) => setTimeout(r, 1500)); // let the picture settle for the screenshot
    // A visit is never captured on the kiosk: the screenshot control refuses, and says why.
    assert.match(await kiosk.screenshotRefused('1-kiosk-in-call'), /video is on screen/);
    await page.screenshot({ path: path.join(ARTIFACTS, '1-console-in-call.png') });
  });

  it('End on the kiosk returns the kiosk to Idle and the console to its list', async () => {
    await kiosk.end();
    await kiosk.waitScreen('ended');
    await kiosk.screenshot('1-kiosk-ended');
    await page.locator('#call').waitFor({ state: 'hidden', timeout: 15000 });
    await page.locator('#queue-view').waitFor({ state: 'visible' });
    await kiosk.waitScreen('idle', 15000);
  });

  it('End in the console returns the kiosk to Idle and the console to its list', async () => {
    await startVisit();
    await rising('kiosk: clinician video frames decoded', () => kiosk.stats().remote_video_frames, 10);
    await page.click('#end');
    await kiosk.waitScreen('ended');
    await page.locator('#call').waitFor({ state: 'hidden', timeout: 15000 });
    await kiosk.waitScreen('idle', 15000);
  });

  it('a malformed message from the server ends the visit cleanly and the kiosk returns to Idle', async () => {
    await startVisit();
    publishRaw(fleetd, `telekiosk/v1/dev/${deviceId}/visit/in`, '{"type":"answer","visit_id":');
    await kiosk.waitScreen('ended');
    assert.match(kiosk.stderr, /malformed message from fleetd: .*(EOF|malformed)/);
    await page.locator('#call').waitFor({ state: 'hidden', timeout: 15000 });
    await kiosk.waitScreen('idle', 15000);
  });

  it('a second clinician joining a visit already taken is told so', async () => {
    const second = await signIn(browser, fleetd, USER, PASSWORD);
    await kiosk.waitScreen('idle');
    // A Spanish-speaking patient this time, tapping the buttons by what they say.
    kiosk.tapLabel('Español');
    await kiosk.waitLine('the kiosk in Spanish', (l) => l.includes('"event":"language","language":"es"'), 10000);
    kiosk.tapLabel('Comenzar');
    await kiosk.waitScreen('consent');
    kiosk.tapLabel('Aceptar');
    await kiosk.waitScreen('waiting');
    const visitId = await second.locator('button.join').first().getAttribute('data-visit', { timeout: 15000 });
    await page.locator('button.join').first().click();
    await kiosk.waitScreen('in_call', 20000);
    // The second console's list is already stale by now; it asks for the visit anyway.
    await second.evaluate((id) => window.telekiosk.join(id), visitId);
    await second.locator('#notice').filter({ hasText: /already taken/i }).waitFor({ timeout: 10000 });
    await second.screenshot({ path: path.join(ARTIFACTS, '2-console-already-taken.png') });
    await page.click('#end');
    await kiosk.waitScreen('idle', 20000);
    await second.context().close();
  });
});
