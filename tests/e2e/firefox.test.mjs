// The clinician in Debian's Firefox ESR, without the OpenH264 plug-in (as on a hospital network
// that blocks its download): Firefox picks VP8 from the kiosk's offer, and the visit has video and
// audio both ways. Every part is real: fleetd + mosquitto, telekiosk (headless, dev profile),
// firefox-esr driven over WebDriver BiDi. A missing firefox-esr fails the test; it never skips.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import {
  ARTIFACTS, FIREFOX, consoleBars, consoleCodecs, consoleInbound, consolePicture, consoleProtection, enrolKiosk,
  requireParts, signInFirefox, startFirefox, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-firefox';
const PASSWORD = 'correct horse battery staple';

/** Counter `read()` must rise by at least `by` within the wait: media is flowing, not stalled. */
async function rising(what, read, by = 10, ms = 15000) {
  const start = await read();
  return waitFor(`${what} to rise by ${by} from ${start}`, async () => {
    const now = await read();
    return now - start >= by ? now : false;
  }, ms, 250);
}

describe('Firefox ESR without OpenH264 as the clinician', () => {
  let fleetd; let tpm; let kiosk; let browser; let page;

  before(async () => {
    requireParts({ browser: FIREFOX });
    fleetd = await startFleetd(USER, PASSWORD);
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm));
    browser = await startFirefox();
    page = await signInFirefox(browser, fleetd, USER, PASSWORD);
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  it('joins a visit and both sides see and hear each other, over VP8', async () => {
    await kiosk.waitScreen('idle');
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = await page.waitForSelector('button.join', { visible: true, timeout: 15000 });
    const joinedAt = performance.now();
    await join.click();
    await kiosk.waitScreen('in_call', 20000);
    await page.waitForSelector('#call', { visible: true });

    const inbound = async () => (await consoleInbound(page)) || { framesDecoded: 0, audioPackets: 0, audioEnergy: 0 };
    await waitFor('Firefox: first kiosk frame decoded', async () => (await inbound()).framesDecoded > 0, 20000, 50);
    const firstFrameMs = Math.round(performance.now() - joinedAt);
    const codecs = await consoleCodecs(page);
    assert.equal(codecs.video, 'video/VP8', `Firefox decodes ${JSON.stringify(codecs)}`);
    assert.equal(codecs.audio, 'audio/opus', `Firefox decodes ${JSON.stringify(codecs)}`);

    // Firefox decodes the kiosk's video and hears it.
    const before = { ...(await inbound()), at: performance.now() };
    await rising('Firefox: kiosk video framesDecoded', async () => (await inbound()).framesDecoded, 30);
    await rising('Firefox: kiosk audio packets', async () => (await inbound()).audioPackets, 50);
    await rising('Firefox: kiosk audio energy', async () => (await inbound()).audioEnergy * 1000, 1);
    // The kiosk decodes Firefox's video (VP8) and plays its audio.
    await rising('kiosk: clinician video frames decoded', () => kiosk.stats().remote_video_frames, 30);
    await rising('kiosk: clinician audio buffers played', () => kiosk.stats().remote_audio_buffers, 20);
    const now = { ...(await inbound()), at: performance.now() };
    const fps = ((now.framesDecoded - before.framesDecoded) * 1000) / (now.at - before.at);

    // The picture is the kiosk's camera (test bars), not a black or frozen-blank frame.
    const picture = await waitFor('a picture in the console', async () => {
      const p = await consolePicture(page);
      return p.width > 0 && p.spread > 20 ? p : false;
    }, 10000, 250);
    await page.screenshot({ path: path.join(ARTIFACTS, 'firefox-console-in-call.png') });
    // Through RTCRtpScriptTransform: every frame sealed and opened, none failed, and the
    // picture is the kiosk's test pattern (a yellow and a cyan bar), not ciphertext.
    const e2ee = await consoleProtection(page);
    assert.ok(e2ee.opened > 100 && e2ee.sealed > 100 && e2ee.authFailures === 0, JSON.stringify(e2ee));
    assert.match(e2ee.code, /^\d{5}( \d{5}){4}$/);
    const bars = await consoleBars(page);
    assert.ok(bars.yellow[0] > 150 && bars.yellow[1] > 150 && bars.yellow[2] < 90, JSON.stringify(bars));
    assert.ok(bars.cyan[0] < 90 && bars.cyan[1] > 150 && bars.cyan[2] > 150, JSON.stringify(bars));
    // A visit is never captured on the kiosk (README: screenshots).
    assert.match(await kiosk.screenshotRefused('firefox-kiosk-in-call'), /never capture a visit/);
    console.log(`MEASURED Firefox: first kiosk frame ${firstFrameMs} ms after Join; ` +
      `${fps.toFixed(1)} frames decoded/s; picture ${picture.width}x${picture.height} ` +
      `mean ${picture.mean.toFixed(0)} spread ${picture.spread.toFixed(0)}; codecs ${JSON.stringify(codecs)}`);
    assert.ok(fps > 10, `Firefox decodes ${fps.toFixed(1)} frames/s`);
    const notice = await page.$eval('#stage-notice', (el) => (el.hidden ? '' : el.textContent));
    assert.doesNotMatch(notice, /audio only/i, 'video works, yet the console says audio only');
  });

  it('End in the console returns the kiosk to Idle and the console to its list', async () => {
    await page.click('#end');
    await kiosk.waitScreen('ended');
    await page.waitForSelector('#call', { hidden: true, timeout: 15000 });
    await page.waitForSelector('#queue-view', { visible: true });
    await kiosk.waitScreen('idle', 15000);
  });

  it('a browser that can decode no offered video codec rejects video, and the visit goes on with audio, saying so', async () => {
    // The console is shown the kiosk's offer without VP8: Firefox, without OpenH264, then rejects
    // the video line (m=video 0) as it did before the kiosk offered VP8.
    await page.close();
    page = await signInFirefox(browser, fleetd, USER, PASSWORD, { initScript: hideVp8FromOffers });
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = await page.waitForSelector('button.join', { visible: true, timeout: 15000 });
    await join.click();
    const answer = await waitFor('the console\'s answer', () => page.evaluate(() => {
      const pc = window.telekiosk.pc;
      return pc && pc.localDescription && pc.localDescription.sdp;
    }));
    await kiosk.waitScreen('in_call', 20000);
    assert.match(answer, /^m=video 0 /m, 'Firefox did not reject the video line');

    const inbound = async () => (await consoleInbound(page)) || { framesDecoded: 0, audioPackets: 0, audioEnergy: 0 };
    await rising('Firefox: kiosk audio packets', async () => (await inbound()).audioPackets, 50);
    await rising('kiosk: clinician audio buffers played', () => kiosk.stats().remote_audio_buffers, 20);
    assert.equal((await inbound()).framesDecoded, 0);
    await page.waitForFunction(() => /audio only/i.test(document.getElementById('stage-notice').textContent)
      && !document.getElementById('stage-notice').hidden, { timeout: 5000 });
    await kiosk.waitLine('kiosk notice: audio only', (l) => l.includes('"call_notice"') && /audio only/i.test(l), 5000);
    assert.equal(kiosk.screen(), 'in_call');
    await page.screenshot({ path: path.join(ARTIFACTS, 'firefox-console-audio-only.png') });
    assert.match(await kiosk.screenshotRefused('firefox-kiosk-audio-only'), /never capture a visit/);
    await page.click('#end');
    await kiosk.waitScreen('idle', 20000);
  });
});

/** Test-only, runs in the console page: removes VP8 from every offer the page is given. */
function hideVp8FromOffers() {
  const set = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description) {
    const vp8 = description && description.type === 'offer' && /a=rtpmap:(\d+) VP8\/90000/i.exec(description.sdp);
    if (!vp8) return set.call(this, description);
    const pt = vp8[1];
    const sdp = description.sdp.split('\r\n')
      .filter((l) => !l.match(new RegExp(`^a=(rtpmap|rtcp-fb|fmtp):${pt} `)))
      .map((l) => (l.startsWith('m=video') ? l.split(' ').filter((f, i) => i < 3 || f !== pt).join(' ') : l))
      .join('\r\n');
    return set.call(this, { type: 'offer', sdp });
  };
}
