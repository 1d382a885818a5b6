// Issue 11's sign-in through an identity provider, end to end: a real OpenID Connect provider
// (oidc-provider, over HTTPS with a certificate from a throw-away CA that fleetd is told to
// trust) with one confidential client, fleetd with --oidc-*, a headless kiosk on swtpm, and
// Chromium as the clinician. A clinician of the provider signs in with the console's "Sign in
// with …" button and sees their clinic's kiosk waiting; a user the provider gives no telekiosk
// role, a callback with a forged state and an account disabled in fleetd are refused with words
// on the sign-in page and get no session; the audit trail records the sign-in with its second
// factor and no token or code.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ARTIFACTS, BIN, CHROMIUM, Child, enrolKiosk, freePort, startBrowser, startFleetd, startSwtpm,
} from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LABEL = 'Sign in with Maple Health';
const CLINIC = 'Maple Valley Clinic';
const CLIENT_ID = 'telekiosk-fleetd';
/** Users of the provider: their ID token claims and the methods their sign-in used. */
const ACCOUNTS = {
  lee: {
    claims: { preferred_username: 'dr.lee', email: 'lee@maple.example', name: 'Dr Lee',
      telekiosk_roles: ['clinician'], telekiosk_clinics: [CLINIC] },
    amr: ['pwd', 'otp'],
  },
  visitor: {
    claims: { preferred_username: 'visitor', telekiosk_roles: ['billing'], telekiosk_clinics: [CLINIC] },
    amr: ['pwd', 'otp'],
  },
};

/** A CA, and a certificate it issued for localhost and 127.0.0.1, in `dir`. */
function throwAwayCa(dir) {
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1',
    '-subj', '/CN=telekiosk e2e identity provider CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-new', ...ec, '-keyout', f('idp.key'), '-out', f('idp.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
    + 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', f('idp.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('idp.pem'), '-days', '1', '-extfile', f('ext.cnf'));
  return { ca: f('ca.pem'), cert: f('idp.pem'), key: f('idp.key') };
}

describe('sign-in through an OpenID Connect identity provider, in Chromium', () => {
  let fleetd; let idp; let browser; let tpm; let kiosk; let issuer = ''; let secret = '';

  before(async () => {
    for (const file of [path.join(BIN, 'fleetd'), path.join(BIN, 'telekiosk'), CHROMIUM, '/usr/sbin/mosquitto',
      '/usr/bin/swtpm']) {
      if (!fs.existsSync(file)) throw new Error(`${file} is missing: run .ci/run (it installs and builds every part)`);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-idp-'));
    const tls = throwAwayCa(dir);
    secret = `e2e-client-secret-${Date.now()}`;
    const secretFile = path.join(dir, 'client-secret');
    fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    const idpPort = await freePort();
    issuer = `https://localhost:${idpPort}`;
    // fleetd first (it finds the provider at the first sign-in), then the provider, which must
    // know fleetd's callback URL.
    fleetd = await startFleetd('dr-e2e', 'correct horse battery staple', {
      args: ['--oidc-issuer', issuer, '--oidc-client-id', CLIENT_ID, '--oidc-client-secret-file', secretFile,
        '--oidc-ca', tls.ca, '--oidc-label', LABEL, '--oidc-require-mfa'],
    });
    const settings = path.join(dir, 'idp.json');
    fs.writeFileSync(settings, JSON.stringify({
      port: idpPort, cert: tls.cert, key: tls.key, clientId: CLIENT_ID, secretFile,
      redirectUri: `${fleetd.url}api/oidc/callback`, accounts: ACCOUNTS,
    }));
    idp = new Child('oidc-provider', process.execPath, [path.join(HERE, 'oidc_provider.mjs'), settings]);
    await idp.waitLine('ready line', (l) => l.startsWith('ready '), 15000);
    tpm = await startSwtpm();
    ({ kiosk } = await enrolKiosk(fleetd, tpm));
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await kiosk?.stop();
    await tpm?.stop();
    await idp?.stop();
    await fleetd?.stop();
  });

  /** A fresh browser (its own cookies) on the clinician console's sign-in page. */
  async function consolePage() {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(fleetd.url);
    await page.locator('#oidc-button').waitFor({ state: 'visible' });
    return page;
  }

  /** Signs in at the provider as `login` from a fresh console page; returns the page, back at fleetd. */
  async function throughProvider(login) {
    const page = await consolePage();
    assert.equal((await page.locator('#oidc-button').innerText()).trim(), LABEL);
    await page.click('#oidc-button');
    await page.locator('#login').waitFor({ state: 'visible', timeout: 15000 });
    assert.ok(page.url().startsWith(issuer), `the browser is at the provider: ${page.url()}`);
    await page.fill('#login', login);
    await page.click('#submit');
    await page.waitForURL((u) => u.href.startsWith(fleetd.url), { timeout: 15000 });
    return page;
  }

  /** `/api/me`'s status from `page` (200: it has a session). */
  const meStatus = (page) => page.evaluate(async () => (await fetch('/api/me')).status);

  /** The sign-in page's refusal, once it says something. */
  async function refusal(page) {
    const error = page.locator('#signin-error');
    await page.locator('#signin-form').waitFor({ state: 'visible' });
    await page.waitForFunction(() => (document.getElementById('signin-error')?.textContent || '').trim().length > 0,
      null, { timeout: 10000 });
    return (await error.innerText()).trim();
  }

  it('a clinician of the provider signs in with the button and sees their clinic\'s kiosk waiting', async () => {
    const page = await throughProvider('lee');
    await page.locator('#queue-view').waitFor({ state: 'visible', timeout: 15000 });
    const me = await page.evaluate(async () => (await fetch('/api/me')).json());
    assert.deepEqual(me, { username: 'dr.lee', role: 'clinician', clinics: [CLINIC] });
    await kiosk.waitScreen('idle');
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    await page.locator('button.join').first().waitFor({ state: 'visible', timeout: 15000 });
    assert.match(await page.locator('#queue').innerText(), /Maple Valley Clinic/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'oidc-queue.png') });
    const users = JSON.parse(execFileSync(path.join(BIN, 'fleetd'),
      ['user', 'list', '--json', '--data-dir', fleetd.dataDir]).toString());
    const lee = users.find((u) => u.username === 'dr.lee');
    assert.equal(lee.identity_provider, issuer, 'user list shows where the account signs in');
    await page.context().close();
  });

  it('the audit trail records the sign-in with its second factor and no token or code', async () => {
    const day = new Date().toISOString().slice(0, 10);
    const text = execFileSync(path.join(BIN, 'fleetd'), ['audit', 'export', '--from', day, '--to', day,
      '--format', 'json', '--data-dir', fleetd.dataDir]).toString();
    const records = JSON.parse(text);
    const signIn = records.find((r) => r.action === 'session.sign_in' && r.actor === 'user:dr.lee'
      && r.outcome === 'ok');
    assert.ok(signIn, 'the sign-in is in the trail');
    assert.match(signIn.detail, new RegExp(`idp=localhost:${new URL(issuer).port}`));
    assert.match(signIn.detail, /mfa=yes/);
    assert.match(signIn.detail, /amr=pwd,otp/);
    assert.match(signIn.where, /^127\.0\.0\.1:/, 'where is the client address');
    assert.ok(records.some((r) => r.action === 'account.change' && /dr\.lee added from identity provider/.test(r.object)),
      'the account\'s creation is in the trail');
    assert.ok(!text.includes(secret), 'the client secret is in the trail');
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}/, 'a token (JWT) is in the trail');
    assert.doesNotMatch(text, /code=|access_token|id_token/, 'a code or token is in the trail');
  });

  it('a user the provider gives no telekiosk role is refused in words and gets no session', async () => {
    const page = await throughProvider('visitor');
    assert.match(await refusal(page), /no telekiosk role/);
    assert.equal(await meStatus(page), 401);
    assert.ok(!(await page.locator('#queue-view').isVisible()));
    assert.ok(!page.url().includes('signin_error'), 'the address was tidied');
    await page.screenshot({ path: path.join(ARTIFACTS, 'oidc-no-role.png') });
    await page.context().close();
  });

  it('a callback with a state this browser did not get is refused', async () => {
    const page = await consolePage();
    // A real sign-in is started (the browser holds its cookie), then a forged callback arrives.
    await page.click('#oidc-button');
    await page.locator('#login').waitFor({ state: 'visible', timeout: 15000 });
    await page.goto(`${fleetd.url}api/oidc/callback?code=forged-code&state=forged-state`);
    assert.match(await refusal(page), /not started in this browser/);
    assert.equal(await meStatus(page), 401);
    await page.context().close();
  });

  it('an account disabled in fleetd is refused at its next sign-in, whatever the provider says', async () => {
    execFileSync(path.join(BIN, 'fleetd'), ['user', 'disable', 'dr.lee', '--data-dir', fleetd.dataDir]);
    const page = await throughProvider('lee');
    assert.match(await refusal(page), /disabled/);
    assert.equal(await meStatus(page), 401);
    await page.context().close();
  });
});
