// The patient's side of issue 12, end to end with every part real (fleetd + mosquitto, the
// headless kiosk on swtpm, Chromium clinicians): a scheduled patient types the visit code their
// clinician made and reaches that clinician only; a Spanish-speaking walk-in's queue entry says
// Spanish; the kiosk speaks English again after the visit. The kiosk is touched by its controls'
// accessible labels ("I have a visit code", "Español", the keypad's digits), as a finger would.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import {
  ARTIFACTS, BUTTONS, addUser, enrolKiosk, requireParts, signIn, startBrowser, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-code';
const OTHER = 'dr-other';
const PASSWORD = 'correct horse battery staple';

describe('the patient: a visit code reaches its clinician, a Spanish walk-in says Spanish', () => {
  let fleetd; let tpm; let kiosk; let browser; let page; let other; let code;

  before(async () => {
    requireParts();
    fleetd = await startFleetd(USER, PASSWORD);
    addUser(fleetd, OTHER, PASSWORD, { clinics: ['Maple Valley Clinic'], totp: true });
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm));
    browser = await startBrowser();
    page = await signIn(browser, fleetd, USER, PASSWORD);
    other = await signIn(browser, fleetd, OTHER, PASSWORD);
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  /** Types `digits` on the kiosk's keypad, one key at a time, until the keypad shows them all. */
  async function typeCode(digits) {
    const before = kiosk.events('code_digits').length;
    for (const digit of digits) kiosk.tapLabel(digit);
    await waitFor(`the keypad showing ${digits.length} digits`, () =>
      kiosk.events('code_digits').slice(before).some((e) => e.typed === digits.length), 10000);
  }

  /** The rows of a console's waiting list, as text. */
  async function queueText(console) {
    return console.locator('#queue').innerText();
  }

  it('a patient types the code their clinician made and waits for that clinician only', async () => {
    // The clinician makes a code in the console; it is shown once, large.
    await page.selectOption('#code-clinic', 'Maple Valley Clinic');
    await page.click('#code-create');
    await page.locator('#code-made').waitFor({ state: 'visible', timeout: 10000 });
    code = (await page.locator('#code-digits').innerText()).trim();
    assert.match(code, /^\d{6}$/, 'six digits');
    await page.screenshot({ path: path.join(ARTIFACTS, 'patient-console-code.png') });

    // The patient types it on the kiosk's keypad and accepts the consent notice.
    await kiosk.waitScreen('idle');
    kiosk.tapLabel('I have a visit code');
    await kiosk.waitScreen('code_entry');
    await typeCode(code);
    await kiosk.screenshot('patient-kiosk-code-typed');
    kiosk.tapLabel('OK');
    await kiosk.waitScreen('consent');
    kiosk.tap(...BUTTONS.accept);
    await kiosk.waitScreen('waiting');

    // Their clinician sees it, marked as theirs; the other clinician of the clinic does not.
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    assert.match(await queueText(page), /for you/i);
    await new Promise((r) => setTimeout(r, 2000)); // the other console has had every queue update
    assert.equal(await other.locator('#queue button.join').count(), 0, 'another clinician does not see a code visit');
    await page.screenshot({ path: path.join(ARTIFACTS, 'patient-console-for-you.png') });

    await join.click();
    await kiosk.waitScreen('in_call', 20000);
    await kiosk.end();
    await kiosk.waitScreen('ended');
  });

  it('the same code does not work twice: the kiosk says so and nothing is queued', async () => {
    await kiosk.waitScreen('idle', 30000);
    kiosk.tapLabel('I have a visit code');
    await kiosk.waitScreen('code_entry');
    await typeCode(code);
    kiosk.tapLabel('OK');
    await kiosk.waitScreen('consent');
    const seen = kiosk.events('screen').length;
    kiosk.tap(...BUTTONS.accept);
    await waitFor('the kiosk back at its keypad, the code refused', () =>
      kiosk.events('screen').slice(seen).some((e) => e.screen === 'code_entry'), 15000);
    await kiosk.screenshot('patient-kiosk-code-used');
    assert.equal(await page.locator('#queue button.join').count(), 0, 'a refused code queues nothing');
    kiosk.tapLabel('Back');
    await kiosk.waitScreen('idle');
  });

  it('a Spanish-speaking walk-in is listed as Spanish, and the kiosk speaks English after', async () => {
    await kiosk.waitScreen('idle', 30000);
    kiosk.tapLabel('Español');
    await waitFor('the kiosk in Spanish', () => kiosk.events('language').some((e) => e.language === 'es'), 10000);
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    await waitFor('the queue entry saying Spanish', async () => /Spanish/.test(await queueText(page)), 15000);
    await waitFor('the queue entry saying Spanish on the other console too', async () =>
      /Spanish/.test(await queueText(other)), 15000);
    await page.screenshot({ path: path.join(ARTIFACTS, 'patient-console-spanish.png') });
    kiosk.tap(...BUTTONS.cancel);
    await kiosk.waitScreen('ended');
    await kiosk.waitScreen('idle', 30000);
    const languages = kiosk.events('language');
    assert.equal(languages[languages.length - 1].language, 'en', 'back to English after the visit');
  });
});
