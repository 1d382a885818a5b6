// Issue 11's end to end: a clinician enrols two-step sign-in (TOTP) in the console in Chromium,
// signs in again with a code computed here, joins a visit of their clinic while a clinician of
// another clinic does not see it waiting, and an auditor exports the visit's records.
// Every part is real (fleetd + mosquitto, a headless telekiosk on swtpm, Chromium); the test is
// the authenticator app: it reads the key the page shows as text and computes RFC 6238 codes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import {
  ARTIFACTS, addUser, consoleInbound, enrolKiosk, nextTotp, rememberTotp, requireParts, rising, signIn,
  startBrowser, startFleetd, startSwtpm, totpCode, waitFor,
} from './harness.mjs';

const CLINIC = 'Maple Valley Clinic';
const REGISTRY_ROOM = 'Exam Room 5';
const NEW_USER = 'dr-new';
const NEW_PASSWORD = 'maple valley evening rounds 7';
const OTHER_USER = 'dr-other';
const OTHER_PASSWORD = 'other clinic morning rounds 3';
const AUDITOR = 'auditor-e2e';
const AUDITOR_PASSWORD = 'ledger of quiet careful reviews';

/** The 30 s time step of now. */
const stepNow = () => Math.floor(Date.now() / 30000);

describe('two-step sign-in, clinic scope and the audit trail, in Chromium', () => {
  let fleetd; let tpm; let kiosk; let browser; let page; let other;
  let secret = ''; let recovery = []; const codesUsed = [];

  before(async () => {
    requireParts();
    // The harness's own clinician (with TOTP) is not used here; the test adds its own.
    fleetd = await startFleetd('dr-e2e', 'correct horse battery staple');
    addUser(fleetd, NEW_USER, NEW_PASSWORD, { clinics: [CLINIC] });
    addUser(fleetd, OTHER_USER, OTHER_PASSWORD, { clinics: ['Other Clinic'], totp: true });
    addUser(fleetd, AUDITOR, AUDITOR_PASSWORD, { role: 'auditor', totp: true });
    tpm = await startSwtpm();
    // fleetd's registry names the room differently from what the kiosk says of itself: the
    // console must show the registry's name.
    ({ kiosk } = await enrolKiosk(fleetd, tpm, undefined, { registryRoom: REGISTRY_ROOM }));
    browser = await startBrowser();
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 },
      permissions: ['camera', 'microphone'] });
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  /** Password step in the console; the page then shows `card`. */
  async function password(card) {
    await page.locator('#signin-form').waitFor({ state: 'visible' });
    await page.fill('#username', NEW_USER);
    await page.fill('#password', NEW_PASSWORD);
    await page.click('#signin');
    await page.locator(card).waitFor({ state: 'visible' });
  }

  it('a clinician without TOTP enrols it in the console and reaches the queue', async () => {
    await page.goto(fleetd.url);
    await password('#enrol-form');
    const shown = page.locator('#enrol-secret');
    await waitFor('the key shown as text', async () => (await shown.innerText()).trim().length >= 16);
    secret = (await shown.innerText()).replace(/\s+/g, '');
    assert.match(secret, /^[A-Z2-7]+=*$/, 'the key is base32, as an authenticator app takes it');
    assert.ok(await page.locator('#enrol-qr').evaluate((img) => img.naturalWidth > 0 || img.src.length > 0),
      'a QR code is shown');
    await page.screenshot({ path: path.join(ARTIFACTS, 'mfa-enrol.png') });

    // A wrong code first: refused in plain words, and the set-up screen stays.
    const step = stepNow();
    const right = totpCode(secret, step);
    const wrong = String((Number(right) + 500000) % 1000000).padStart(6, '0');
    await page.fill('#enrol-code', wrong);
    await page.click('#enrol-confirm');
    const refusal = page.locator('#enrol-error');
    await waitFor('the wrong code refused', async () => (await refusal.innerText()).trim().length > 0, 10000);
    assert.match(await refusal.innerText(), /code/i);
    assert.ok(await page.locator('#enrol-form').isVisible());

    await page.fill('#enrol-code', right);
    await page.click('#enrol-confirm');
    codesUsed.push(right);
    rememberTotp(fleetd, NEW_USER, secret, step);
    await page.locator('#recovery-card').waitFor({ state: 'visible' });
    recovery = (await page.locator('#recovery-codes li').allInnerTexts()).map((c) => c.trim());
    assert.ok(recovery.length >= 5, `recovery codes shown: ${recovery.length}`);
    assert.equal(new Set(recovery).size, recovery.length, 'the recovery codes differ');
    await page.click('#recovery-done');
    await page.locator('#queue-view').waitFor({ state: 'visible' });
  });

  it('signing in again takes the password and a fresh code; a replayed code is refused', async () => {
    await page.click('#signout');
    await password('#code-form');
    const code = await nextTotp(fleetd, NEW_USER);
    codesUsed.push(code);
    await page.fill('#code', code);
    await page.click('#code-submit');
    await page.locator('#queue-view').waitFor({ state: 'visible' });

    // The same code again, in the same time step: refused, with a message.
    await page.click('#signout');
    await password('#code-form');
    await page.fill('#code', code);
    await page.click('#code-submit');
    const refusal = page.locator('#code-error');
    await waitFor('the replayed code refused', async () => (await refusal.innerText()).trim().length > 0, 10000);
    assert.match(await refusal.innerText(), /code/i);
    assert.ok(await page.locator('#code-form').isVisible());
    assert.ok(!(await page.locator('#queue-view').isVisible()), 'a replayed code opened the console');

    // A code of a later time step signs in (nextTotp waits for one if need be).
    const fresh = await nextTotp(fleetd, NEW_USER);
    codesUsed.push(fresh);
    await page.fill('#code', fresh);
    await page.click('#code-submit');
    await page.locator('#queue-view').waitFor({ state: 'visible' });
  });

  it('a clinician of another clinic does not see the waiting kiosk; this clinic\'s does and joins', async () => {
    other = await signIn(browser, fleetd, OTHER_USER, OTHER_PASSWORD);
    await kiosk.waitScreen('idle');
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    const row = await page.locator('#queue').innerText();
    assert.match(row, /Maple Valley Clinic/);
    assert.match(row, /Exam Room 5/, 'the room is the registry\'s');
    assert.doesNotMatch(row, /Exam Room 2/, 'the room is the kiosk\'s own claim');
    await page.screenshot({ path: path.join(ARTIFACTS, 'mfa-queue.png') });

    // The other clinic's console is live (its queue updates arrive) and has had the same time to
    // list the kiosk, and then some.
    await other.locator('#link-state[data-state="live"]').waitFor({ timeout: 10000 });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await other.locator('#link-state').getAttribute('data-state'), 'live');
    assert.equal(await other.locator('button.join').count(), 0, 'another clinic\'s clinician sees the kiosk');
    assert.doesNotMatch(await other.locator('#queue').innerText(), /Maple Valley|Exam Room/);
    assert.ok(await other.locator('#queue-empty').isVisible());
    await other.screenshot({ path: path.join(ARTIFACTS, 'mfa-other-clinic-queue.png') });

    await join.click();
    await kiosk.waitScreen('in_call', 20000);
    await page.locator('#call').waitFor({ state: 'visible' });
    await rising('kiosk: clinician video frames decoded', () => kiosk.stats().remote_video_frames, 30, 30000);
    await rising('kiosk: clinician audio buffers played', () => kiosk.stats().remote_audio_buffers, 20);
    await rising('console: kiosk video framesDecoded', async () => (await consoleInbound(page)).framesDecoded, 30);
    await rising('console: kiosk audio packets', async () => (await consoleInbound(page)).audioPackets, 50);
    assert.equal(await other.locator('button.join').count(), 0);
    await page.click('#end');
    await kiosk.waitScreen('ended');
    await page.locator('#call').waitFor({ state: 'hidden', timeout: 15000 });
  });

  it('the auditor exports the visit\'s and the sign-in records, with no secret in them', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const audit = await context.newPage();
    await audit.goto(fleetd.url);
    const post = (url, body) => audit.evaluate(async ([u, b]) => {
      const res = await fetch(u, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
      return { status: res.status, data: await res.json().catch(() => null) };
    }, [url, body]);
    const first = await post('/api/login', { username: AUDITOR, password: AUDITOR_PASSWORD });
    assert.equal(first.status, 200, JSON.stringify(first.data));
    assert.equal(first.data.step, 'code');
    const code = await nextTotp(fleetd, AUDITOR);
    const second = await post('/api/login/code', { pending: first.data.pending, code });
    assert.equal(second.status, 200, JSON.stringify(second.data));

    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    const query = `from=${day(Date.now() - 86400000)}&to=${day(Date.now())}&format=json`;
    const answer = await audit.evaluate(async (q) => {
      const res = await fetch(`/api/audit/export?${q}`);
      return { status: res.status, text: await res.text() };
    }, query);
    assert.equal(answer.status, 200, answer.text);
    const records = JSON.parse(answer.text);
    const has = (action, actor) => records.some((r) => r.action === action && (!actor || r.actor === actor));
    const me = `user:${NEW_USER}`;
    assert.ok(has('visit.queued'), 'visit.queued is exported');
    assert.ok(has('visit.joined', me), 'visit.joined by the clinician is exported');
    assert.ok(has('session.sign_in', me), 'the clinician\'s sign-in is exported');
    assert.ok(has('session.mfa_enrol', me), 'the clinician\'s TOTP enrolment is exported');
    for (const word of [NEW_PASSWORD, OTHER_PASSWORD, AUDITOR_PASSWORD, secret, ...recovery]) {
      assert.ok(!answer.text.includes(word), `the export holds a secret (${word.length} characters)`);
    }
    for (const c of [...codesUsed, code]) {
      assert.doesNotMatch(answer.text, new RegExp(`\\b${c}\\b`), 'the export holds a TOTP code');
    }
    await context.close();
  });
});
