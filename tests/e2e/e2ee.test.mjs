// End-to-end encryption against whoever relays the signalling. Chromium is the clinician; its
// WebSocket to fleetd goes through a man in the middle (Playwright's routeWebSocket) that rewrites
// what the relay carries, as a compromised relay would: the kiosk's signed key, the DTLS
// fingerprint of its offer, or the browser's key in the answer. Each time the visit is refused on
// both screens, in plain words, and fleetd's audit trail says which check failed. The untouched
// relay is the control: the same visit goes through, both screens show the same code. A browser
// without encoded transforms is told why and does not join (no unencrypted fallback). Every part
// is real: fleetd + mosquitto, telekiosk (headless, dev profile, swtpm), Chromium.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ARTIFACTS, BIN, BUTTONS, consoleProtection, enrolKiosk, requireParts, signIn, startBrowser, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-e2ee';
const PASSWORD = 'correct horse battery staple';

/** A fresh P-256 public key, SEC1 uncompressed, base64url: what an attacker would put in. */
function attackerKey() {
  const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  return point.toString('base64url');
}

/** A relay in the middle that passes everything through `edit` (server → page as `down`, page → server as `up`). */
function middle(edit) {
  return (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(typeof m === 'string' ? JSON.stringify(edit.up?.(JSON.parse(m)) ?? JSON.parse(m)) : m));
    server.onMessage((m) => ws.send(typeof m === 'string' ? JSON.stringify(edit.down?.(JSON.parse(m)) ?? JSON.parse(m)) : m));
  };
}

describe('end-to-end encryption against a man in the middle of the signalling', () => {
  let fleetd; let tpm; let kiosk; let browser;

  before(async () => {
    requireParts();
    fleetd = await startFleetd(USER, PASSWORD);
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm));
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  /** A visit through a relay that applies `edit`; returns the console page once the clinician joined. */
  async function visitThrough(edit) {
    const page = await signIn(browser, fleetd, USER, PASSWORD, { routeWs: middle(edit) });
    await kiosk.waitScreen('idle', 20000);
    mark = kiosk.events('screen').length;
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    await join.click();
    return page;
  }

  /** The visit was refused on both screens, and the trail says why. */
  async function refusedOnBothSides(page, auditWords, shots = '') {
    const ended = await waitFor('the kiosk ending the visit', () => kiosk.events('screen').slice(mark)
      .find((e) => e.screen === 'ended'), 30000);
    assert.equal(ended.reason, 'security_check_failed', JSON.stringify(ended));
    await page.locator('#queue-view').waitFor({ state: 'visible', timeout: 15000 });
    const notice = await waitFor('the console saying why', async () => page.locator('#notice').innerText(), 10000);
    assert.match(notice, /refused for your patient's privacy|encryption could not be confirmed/, notice);
    if (shots) {
      await kiosk.screenshot(`${shots}-kiosk-refused`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${shots}-console-refused.png`) });
    }
    assert.equal(kiosk.events('e2ee').filter((e) => e.code).length, kioskCodes, 'the kiosk showed no code');
    const day = new Date().toISOString().slice(0, 10);
    const trail = execFileSync(path.join(BIN, 'fleetd'), ['audit', 'export', '--from', day, '--to', day,
      '--format', 'json', '--data-dir', fleetd.dataDir]).toString();
    assert.match(trail, auditWords);
    await page.context().close();
    await kiosk.waitScreen('idle', 20000);
  }

  let kioskCodes = 0;
  /** How many screens the kiosk had shown before the visit under test. */
  let mark = 0;

  it('an untouched relay: the visit is encrypted and both screens show the same code', async () => {
    const page = await visitThrough({});
    await kiosk.waitScreen('in_call', 20000);
    const code = await waitFor('the console showing the code', async () => (await consoleProtection(page)).code, 15000);
    const shown = await waitFor('the kiosk showing the code', () => kiosk.events('e2ee').find((e) => e.code), 10000);
    assert.equal(shown.code, code, 'the two screens show different codes');
    kioskCodes = kiosk.events('e2ee').filter((e) => e.code).length;
    await page.click('#end');
    await kiosk.waitScreen('idle', 20000);
    await page.context().close();
  });

  it('a relay swapping the kiosk\'s key: the console refuses, and so does the kiosk', async () => {
    const page = await visitThrough({
      down: (m) => (m.type === 'offer' ? { ...m, e2ee: { ...m.e2ee, public_key: attackerKey() } } : m),
    });
    await refusedOnBothSides(page, /refused the visit: end-to-end security check failed \(the kiosk's key is not signed/, 'e2ee');
  });

  it('a relay swapping the DTLS fingerprint of the offer: refused on both sides', async () => {
    const page = await visitThrough({
      down: (m) => (m.type === 'offer'
        ? { ...m, sdp: m.sdp.replace(/a=fingerprint:sha-256 ([0-9A-F]{2})/g, (_, b) => `a=fingerprint:sha-256 ${b === '00' ? '01' : '00'}`) }
        : m),
    });
    await refusedOnBothSides(page, /security check failed \(the kiosk's key is not signed/);
  });

  it('a relay swapping the browser\'s key in the answer: the kiosk refuses, and so does the console', async () => {
    const page = await visitThrough({
      up: (m) => (m.type === 'answer' ? { ...m, e2ee: { ...m.e2ee, public_key: attackerKey() } } : m),
    });
    await refusedOnBothSides(page, /kiosk refused the visit: end-to-end security check failed \(key confirmation\)/);
  });

  it('a browser that cannot encrypt end to end is told why and does not join', async () => {
    // As a browser without encoded transforms (an old Safari, a locked-down embedded view).
    const initScript = () => {
      delete RTCRtpSender.prototype.createEncodedStreams;
      delete window.RTCRtpScriptTransform;
    };
    const page = await signIn(browser, fleetd, USER, PASSWORD, { initScript });
    await kiosk.waitScreen('idle', 20000);
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    await join.click();
    const notice = await waitFor('the console saying why', async () => page.locator('#notice').innerText(), 10000);
    assert.match(notice, /cannot encrypt video visits end to end, so it cannot join/);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(kiosk.events('screen').at(-1).screen, 'waiting', 'the kiosk left the queue: a join was sent');
    assert.ok(await join.isVisible(), 'the visit is still waiting for a clinician who can take it');
    kiosk.tap(...BUTTONS.cancel);
    await kiosk.waitScreen('idle', 20000);
    await page.context().close();
  });
});
