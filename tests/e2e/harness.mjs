// Starts the real parts of a visit on loopback — fleetd (with its supervised mosquitto), a
// headless telekiosk and Debian's Chromium or Firefox ESR — and gives the tests handles to drive
// them.
// Nothing here is mocked: a missing binary, broker or browser is an error, never a skip.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/telekiosk-target');
export const BIN = process.env.TK_BIN_DIR || path.join(TARGET, 'debug');
export const ARTIFACTS = process.env.TK_ARTIFACTS || path.join(ROOT, 'artifacts/e2e');
export const CHROMIUM = process.env.TK_CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.TK_FIREFOX || '/usr/bin/firefox-esr';

// Every temporary directory of a test file (fleetd's data, swtpm's state, the kiosk's state
// directory, Chromium's profile) is made under one directory of its own, through TMPDIR, which
// the parts started from here inherit. It is removed when the test file's process exits, so
// repeated runs on one machine do not fill /tmp (a fleetd with OS bundles holds hundreds of
// MiB). TK_KEEP_TMP=1 keeps it for a look after a failure.
const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-e2e-'));
process.env.TMPDIR = TEMP_ROOT;
process.on('exit', () => {
  if (process.env.TK_KEEP_TMP === '1') console.log(`temporary files kept: ${TEMP_ROOT}`);
  else fs.rmSync(TEMP_ROOT, { recursive: true, force: true });
});

/** Fails loudly when a part the tests need is not on this machine; `browser` names the one used. */
export function requireParts({ browser = CHROMIUM } = {}) {
  for (const file of [path.join(BIN, 'fleetd'), path.join(BIN, 'telekiosk'), browser,
    '/usr/sbin/mosquitto', '/usr/bin/mosquitto_pub', '/usr/bin/swtpm', '/usr/bin/turnserver',
    '/usr/sbin/nft']) {
    if (!fs.existsSync(file)) {
      throw new Error(`${file} is missing: run .ci/run (it installs and builds every part)`);
    }
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Polls `probe` until it returns a truthy value or `ms` pass; the error says what was awaited. */
export async function waitFor(what, probe, ms = 20000, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
}

/**
 * `cmd args` run through `prefix`, a command prefix such as `['ip', 'netns', 'exec', 'tk-clinic']`
 * (which execs the command in place, so the process id stays the command's own).
 */
export function prefixed(prefix, cmd, args) {
  return prefix && prefix.length ? [prefix[0], [...prefix.slice(1), cmd, ...args]] : [cmd, args];
}

/** A child process whose stdout lines are kept; stderr goes to a log file in the artifacts. */
export class Child {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.lines = [];
    this.times = []; // performance.now() at which each stdout line arrived
    this.log = fs.createWriteStream(path.join(ARTIFACTS, `${name}.log`));
    const { prefix, ...spawnOpts } = opts;
    [cmd, args] = prefixed(prefix, cmd, args);
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOpts });
    this.exited = once(this.proc, 'exit');
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.times.push(performance.now());
      this.log.write(`[stdout] ${line}\n`);
    });
    this.stderr = '';
    this.proc.stderr.on('data', (d) => {
      this.log.write(d);
      this.stderr += d.toString();
    });
  }

  /** The first stdout line from index `from` on that matches `pred`. */
  async waitLine(what, pred, ms, from = 0) {
    return waitFor(`${this.name}: ${what}`, () => {
      if (this.exitedNow()) throw new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}); see its log`);
      return this.lines.slice(from).find(pred);
    }, ms);
  }

  /** Whether the process has ended (by itself or by a signal). */
  exitedNow() {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  async stop() {
    if (!this.exitedNow()) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    this.log.end();
  }
}

/**
 * fleetd with a fresh data dir, a clinician account of the demo kiosk's clinic (Maple Valley
 * Clinic: a clinician only sees their clinics' kiosks), and its own mosquitto. Options: `listen`,
 * the address both its listeners bind (default 127.0.0.1; 0.0.0.0 to be reached from another
 * network namespace), and `host`, the name kiosks use for it (default 127.0.0.1; its server
 * certificate covers the machine's host name). The console URL stays on 127.0.0.1.
 */
export async function startFleetd(user, password, { listen = '127.0.0.1', host = '127.0.0.1', args = [] } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-fleetd-'));
  const fleetd = path.join(BIN, 'fleetd');
  const added = execFileSync(fleetd, ['user', 'add', user, '--role', 'clinician',
    '--clinic', 'Maple Valley Clinic', '--password-stdin', '--with-totp', '--json', '--data-dir', dataDir],
    { input: `${password}\n` });
  TOTP_USERS.set(`${dataDir}\n${user}`, { secret: JSON.parse(added.toString()).totp_secret, last: -1 });
  const [web, mqtt] = [await freePort(), await freePort()];
  return serveFleetd('fleetd', { dataDir, web, mqtt, listen, host, args });
}

/** Per data dir and user: the TOTP secret `fleetd user add --with-totp` gave, and the last step used. */
const TOTP_USERS = new Map();

/**
 * The RFC 6238 code (HMAC-SHA1, 6 digits, 30 s steps) of a base32 `secret` for time step `step`,
 * as an authenticator app computes it.
 * @param {string} secret
 * @param {number} step
 */
export function totpCode(secret, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from((bits.match(/.{8}/g) || []).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, '0');
}

/**
 * A code for `user` of `fleetd` that fleetd has not accepted yet (each step's code works once):
 * the step after the last one used, within a step of now; waits for the next step if need be.
 */
export async function nextTotp(fleetd, user) {
  const entry = TOTP_USERS.get(`${fleetd.dataDir}\n${user}`);
  if (!entry) throw new Error(`${user} was not added with --with-totp by startFleetd`);
  for (;;) {
    const now = Math.floor(Date.now() / 30000);
    const step = Math.max(entry.last + 1, now - 1);
    if (step <= now + 1) {
      entry.last = step;
      return totpCode(entry.secret, step);
    }
    await new Promise((r) => setTimeout(r, (step - 1) * 30000 - Date.now() + 500));
  }
}

/** `fleetd serve` on a data dir and ports; resolves once it says it is ready. */
async function serveFleetd(name, { dataDir, web, mqtt, listen, host, args = [] }) {
  const child = new Child(name, path.join(BIN, 'fleetd'), ['serve', '--data-dir', dataDir,
    '--listen', `${listen}:${web}`, '--mqtt-listen', `${listen}:${mqtt}`, ...args]);
  await child.waitLine('ready line', (l) => l.startsWith('fleetd ready:'), 30000);
  const caLine = child.lines.find((l) => l.startsWith('CA certificate: '));
  if (!caLine) throw new Error('fleetd did not print where its CA certificate is');
  return Object.assign(child, {
    dataDir, web, mqtt, listen, host, args, ca: caLine.slice('CA certificate: '.length).trim(),
    url: `https://127.0.0.1:${web}/`,
    serverUrl: `https://${host}:${web}`, mqttUrl: `mqtts://${host}:${mqtt}`,
  });
}

/**
 * Kills fleetd with SIGKILL (no clean shutdown: as a crash or a power cut would) and starts it
 * again on the same data dir and ports once `downMs` have passed. Returns the new fleetd.
 */
export async function crashAndRestartFleetd(fleetd, downMs, name = 'fleetd-restarted') {
  fleetd.proc.kill('SIGKILL');
  await fleetd.exited;
  fleetd.log.end();
  await new Promise((r) => setTimeout(r, downMs));
  return serveFleetd(name, fleetd);
}

/** Whether something listens on 127.0.0.1:`port` in the network namespace `prefix` runs in. */
function listening(port, prefix) {
  if (!prefix || !prefix.length) {
    return new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => { sock.destroy(); resolve(true); });
      sock.on('error', () => resolve(false));
    });
  }
  const [cmd, args] = prefixed(prefix, 'bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * A software TPM (swtpm) on loopback, with its state in `dir` (kept across restarts). With
 * `prefix` (e.g. `['ip', 'netns', 'exec', 'tk-clinic']`) it runs, and is reached, there.
 */
export async function startSwtpm(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-swtpm-')), { prefix } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = new Child('swtpm', '/usr/bin/swtpm', ['socket', '--tpm2',
      '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'], { prefix });
    const up = await waitFor('swtpm listening', async () => {
      if (child.exitedNow()) return 'exited';
      return (await listening(port, prefix)) && 'up';
    }, 10000).catch(() => 'exited');
    if (up === 'up') return Object.assign(child, { dir, port, tcti: `swtpm:host=127.0.0.1,port=${port}` });
    await child.stop(); // port pair taken: try another
  }
  throw new Error('swtpm did not start; see artifacts/e2e/swtpm.log');
}

/** Runs `fleetd` with `args` on the data dir and returns its parsed `--json` output. */
export function fleetdJson(fleetd, ...args) {
  const out = execFileSync(path.join(BIN, 'fleetd'), [...args, '--json', '--data-dir', fleetd.dataDir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.toString());
}

/**
 * A headless kiosk driven through its touchscreen (stdin `tap X Y`), reporting on stdout.
 * Options beyond the state: `profile` (default hw/profiles/dev.toml), `prefix`, a command
 * prefix it runs through (e.g. `['ip', 'netns', 'exec', 'tk-clinic']`), and `env`, variables added
 * to its environment.
 */
export class Kiosk extends Child {
  constructor(fleetd, { tpm, stateDir, token, name = 'telekiosk', profile, prefix, env = {} }) {
    const args = ['--headless',
      '--server', fleetd.serverUrl || `https://127.0.0.1:${fleetd.web}`,
      '--mqtt', fleetd.mqttUrl || `mqtts://127.0.0.1:${fleetd.mqtt}`,
      '--ca', fleetd.ca, '--profile', profile || path.join(ROOT, 'hw/profiles/dev.toml'),
      '--profile-dir', path.join(ROOT, 'hw/profiles'), '--tpm', tpm.tcti, '--state-dir', stateDir,
      '--clinic', 'Maple Valley Clinic', '--room', 'Exam Room 2'];
    if (token) args.push('--enrol-token', token);
    super(name, path.join(BIN, 'telekiosk'), args,
      { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...env }, prefix });
    this.shots = 0;
  }

  events(kind) {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((e) => e.event === kind);
  }

  screen() {
    const screens = this.events('screen');
    return screens.length ? screens[screens.length - 1].screen : undefined;
  }

  async waitScreen(screen, ms = 20000) {
    await waitFor(`kiosk screen "${screen}" (now "${this.screen()}")`, () => this.screen() === screen, ms);
  }

  async waitOnline(ms = 30000) {
    await this.waitLine('fleet link up', (l) => l.includes('"event":"fleet","online":true'), ms);
  }

  /** Latest call counters the kiosk printed. */
  stats() {
    const s = this.events('stats');
    return s.length ? s[s.length - 1] : { remote_video_frames: 0, remote_audio_buffers: 0 };
  }

  tap(x, y) {
    this.proc.stdin.write(`tap ${x} ${y}\n`);
  }

  /** Presses a button by name (join, cancel, end, mute, camera) instead of at a position. */
  press(name) {
    this.proc.stdin.write(`tap ${name}\n`);
  }

  /** Taps the control whose accessible label is `label` ("Accept", "Español"), at its centre. */
  tapLabel(label) {
    this.proc.stdin.write(`tap "${label}"\n`);
  }

  /** Starts a visit as a patient does: Join, then Accept on the consent notice. */
  async join() {
    this.tap(...BUTTONS.join);
    await this.waitScreen('consent');
    this.tap(...BUTTONS.accept);
  }

  /** Ends the call as a patient does: End, then "Yes, end" on the confirmation. */
  async end() {
    const before = this.events('confirm_end').length;
    this.tap(...BUTTONS.end);
    await waitFor('the kiosk asking "End the visit?"',
      () => this.events('confirm_end').slice(before).some((e) => e.shown), 10000);
    this.tap(...BUTTONS.endYes);
  }

  /**
   * Asks for a screenshot while visit video is on screen and asserts the kiosk refuses it (a
   * status line saying why) and writes no file. Returns the refusal's reason.
   */
  async screenshotRefused(name) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    fs.rmSync(file, { force: true });
    const before = this.events('screenshot_refused').length;
    this.proc.stdin.write(`screenshot ${file}\n`);
    await waitFor(`kiosk refusing screenshot ${name}`, () => this.events('screenshot_refused').length > before, 5000);
    const refusal = this.events('screenshot_refused').slice(-1)[0];
    if (this.events('screenshot').some((e) => e.path === file) || fs.existsSync(file)) {
      throw new Error(`the kiosk wrote ${file} during a visit`);
    }
    return refusal.reason;
  }

  async screenshot(name) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    const before = this.events('screenshot').length;
    this.proc.stdin.write(`screenshot ${file}\n`);
    await waitFor(`kiosk screenshot ${name}`, () => this.events('screenshot').length > before, 5000);
    return file;
  }
}

/**
 * Enrols a new kiosk as a technician and an admin would: the admin makes a one-time code, the
 * kiosk starts with it (its key made in the TPM), the admin approves the pending device.
 * Returns the running kiosk (online, over mutual TLS) and its device id. `options` go to
 * [Kiosk] (`profile`, `prefix`, `name`), but `registryRoom`: the room fleetd registers the kiosk
 * in (default the kiosk's own "Exam Room 2").
 */
export async function enrolKiosk(fleetd, tpm, stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-kiosk-')), options = {}) {
  const { registryRoom = 'Exam Room 2', ...kioskOptions } = options;
  const { token } = fleetdJson(fleetd, 'device', 'enrol-token', '--clinic', 'Maple Valley Clinic', '--room', registryRoom);
  const kiosk = new Kiosk(fleetd, { ...kioskOptions, tpm, stateDir, token });
  const pending = await waitFor('a pending device in fleetd', () => {
    if (kiosk.exitedNow()) return { exited: true };
    return fleetdJson(fleetd, 'device', 'list').find((d) => d.status === 'pending');
  }, 30000, 250);
  if (pending.exited) {
    throw new Error(`${kiosk.name} exited before enrolling: ${kiosk.stderr.trim().split('\n').pop()}`);
  }
  fleetdJson(fleetd, 'device', 'approve', pending.id);
  await kiosk.waitOnline();
  return { kiosk, deviceId: pending.id, stateDir };
}

/**
 * Where the kiosk's buttons are on the dev profile's 1280x800 screen (see ui/pages/*.slint):
 * Join on Idle, Accept on the consent notice, Leave (cancel) while waiting, End and Mute in the
 * call, "Yes, end" on End's confirmation.
 */
export const BUTTONS = {
  join: [640, 472], accept: [840, 595], cancel: [640, 697], end: [892, 715], mute: [388, 715],
  endYes: [820, 495],
};

/** Headless Chromium with a fake camera and microphone, as a clinician's browser; `args` adds flags. */
export async function startBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--autoplay-policy=no-user-gesture-required', ...args],
  });
}

/**
 * A signed-in clinician console page; `initScript` (test-only) runs in each page before its own,
 * and `routeWs` (test-only) stands in the middle of its WebSocket to fleetd.
 */
export async function signIn(browser, fleetd, user, password, { initScript, routeWs } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 },
    permissions: ['camera', 'microphone'] });
  if (initScript) await context.addInitScript(initScript);
  // Test-only: the console's WebSocket to fleetd goes through `routeWs(ws)` (a relay in the middle).
  if (routeWs) await context.routeWebSocket(/\/ws$/, routeWs);
  const page = await context.newPage();
  page.on('console', (m) => fs.appendFileSync(path.join(ARTIFACTS, 'console-page.log'), `${m.type()}: ${m.text()}\n`));
  await page.goto(fleetd.url);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('#signin');
  // Two-step sign-in: the code an authenticator app would show.
  await page.waitForSelector('#code-form', { state: 'visible' });
  await page.fill('#code', await nextTotp(fleetd, user));
  await page.click('#code-submit');
  await page.waitForSelector('#queue-view', { state: 'visible' });
  return page;
}

/**
 * Headless Firefox ESR as Debian ships it, driven over WebDriver BiDi: fake camera and microphone,
 * no permission prompts, and no OpenH264 (the plug-in is disabled and its download server is an
 * unreachable local address), as on a hospital network that blocks the download.
 */
export async function startFirefox() {
  return puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: FIREFOX,
    headless: true,
    acceptInsecureCerts: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'permissions.default.camera': 1,
      'permissions.default.microphone': 1,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      'media.gmp-gmpopenh264.enabled': false,
      'media.gmp-gmpopenh264.autoupdate': false,
      'media.gmp-manager.url': 'http://127.0.0.1:9/',
      'media.gmp-manager.updateEnabled': false,
      // Real host addresses, not mDNS names (libnice cannot resolve those).
      'media.peerconnection.ice.obfuscate_host_addresses': false,
    },
  });
}

/**
 * A signed-in clinician console page in a browser started by [startFirefox]; `initScript`
 * (test-only, a function) runs in each page before its own scripts.
 */
export async function signInFirefox(browser, fleetd, user, password, { initScript } = {}) {
  const page = await browser.newPage();
  if (initScript) await page.evaluateOnNewDocument(initScript);
  await page.setViewport({ width: 1280, height: 800 });
  page.on('console', (m) => fs.appendFileSync(path.join(ARTIFACTS, 'console-firefox.log'), `${m.type()}: ${m.text()}\n`));
  await page.goto(fleetd.url);
  // A page opened later in the same browser is signed in already (its session cookie).
  const view = await page.waitForFunction(() => window.telekiosk && ['signin', 'queue'].includes(window.telekiosk.view)
    && window.telekiosk.view, { timeout: 15000 });
  if (await view.jsonValue() === 'signin') {
    await page.type('#username', user);
    await page.type('#password', password);
    await page.click('#signin');
    await page.waitForSelector('#code-form', { visible: true });
    await page.type('#code', await nextTotp(fleetd, user));
    await page.click('#code-submit');
  }
  await page.waitForSelector('#queue-view', { visible: true });
  return page;
}

/** The codecs of the console's inbound video and audio, from getStats() (e.g. `video/VP8`). */
export async function consoleCodecs(page) {
  return page.evaluate(async () => {
    const pc = window.telekiosk && window.telekiosk.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    const out = {};
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.codecId && stats.get(r.codecId)) out[r.kind] = stats.get(r.codecId).mimeType;
    });
    return out;
  });
}

/**
 * How the console's remote video looks right now: its size and the mean and spread of its pixels'
 * brightness (a uniform black picture has both near 0), drawn through a canvas.
 */
export async function consolePicture(page) {
  return page.evaluate(() => {
    const video = document.getElementById('remote');
    const [w, h] = [video.videoWidth, video.videoHeight];
    if (!w || !h) return { width: 0, height: 0, mean: 0, spread: 0 };
    const canvas = document.createElement('canvas');
    canvas.width = 160;
    canvas.height = 90;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(video, 0, 0, 160, 90);
    const { data } = ctx.getImageData(0, 0, 160, 90);
    const luma = [];
    for (let i = 0; i < data.length; i += 4) luma.push((data[i] * 299 + data[i + 1] * 587 + data[i + 2] * 114) / 1000);
    const mean = luma.reduce((a, b) => a + b, 0) / luma.length;
    const spread = Math.sqrt(luma.reduce((a, b) => a + (b - mean) ** 2, 0) / luma.length);
    return { width: w, height: h, mean, spread };
  });
}

/**
 * The console's end-to-end encryption: the Worker's counts (sealed, opened, authFailures,
 * droppedWithoutKeys) and the verification code on screen.
 */
export async function consoleProtection(page) {
  return page.evaluate(async () => {
    const counts = window.telekiosk && await window.telekiosk.protection();
    const shown = !document.getElementById('call-e2ee').hidden;
    return { ...(counts || {}), code: shown ? document.getElementById('call-code').textContent : '' };
  });
}

/**
 * The colours of the kiosk's test pattern (videotestsrc smpte) as the console shows them: the
 * mean RGB of the middle of the first (grey), second (yellow) and third (cyan) bars. Ciphertext
 * decoded as video would show a flat green-grey mush instead.
 */
export async function consoleBars(page) {
  return page.evaluate(() => {
    const video = document.getElementById('remote');
    if (!video.videoWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = 140;
    canvas.height = 80;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(video, 0, 0, 140, 80);
    const bar = (n) => {
      const { data } = ctx.getImageData(n * 20 + 5, 10, 10, 30);
      const sum = [0, 0, 0];
      for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
      return sum.map((v) => Math.round(v / (data.length / 4)));
    };
    return { grey: bar(0), yellow: bar(1), cyan: bar(2) };
  });
}

/** Inbound media counters of the console's peer connection, from getStats(). */
export async function consoleInbound(page) {
  return page.evaluate(async () => {
    const pc = window.telekiosk && window.telekiosk.pc;
    if (!pc) return null;
    const out = { framesDecoded: 0, audioPackets: 0, audioEnergy: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') out.framesDecoded += r.framesDecoded || 0;
      if (r.kind === 'audio') {
        out.audioPackets += r.packetsReceived || 0;
        out.audioEnergy += r.totalAudioEnergy || 0;
      }
    });
    return out;
  });
}

/**
 * Publishes raw bytes on a kiosk's topic through the real broker, as a broken fleetd would: with
 * a client certificate for the `fleetd` identity, issued here by fleetd's own CA (openssl).
 */
export function publishRaw(fleetd, topic, payload) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-pub-'));
  const [key, csr, cert] = ['key.pem', 'req.pem', 'cert.pem'].map((f) => path.join(dir, f));
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', csr, '-subj', '/CN=fleetd-operator');
  openssl('x509', '-req', '-in', csr, '-CA', fleetd.ca, '-CAkey', path.join(fleetd.dataDir, 'ca-key.pem'),
    '-CAcreateserial', '-out', cert, '-days', '1');
  execFileSync('/usr/bin/mosquitto_pub', ['-h', '127.0.0.1', '-p', String(fleetd.mqtt),
    '--cafile', fleetd.ca, '--cert', cert, '--key', key, '-t', topic, '-q', '1', '-m', payload]);
  fs.rmSync(dir, { recursive: true });
}

/** Counter `read()` must rise by at least `by` within the wait: media is flowing, not stalled. */
export async function rising(what, read, by = 10, ms = 15000) {
  const start = await read();
  return waitFor(`${what} to rise by ${by} from ${start}`, async () => {
    const now = await read();
    return now - start >= by ? now : false;
  }, ms, 250);
}

/**
 * Adds `user` to a running fleetd's data dir with the CLI (`role`, `clinics`); with `totp` the
 * secret fleetd gives is kept for [nextTotp]. Returns the CLI's `--json` answer.
 */
export function addUser(fleetd, user, password, { role = 'clinician', clinics = [], totp = false } = {}) {
  const args = ['user', 'add', user, '--role', role, ...clinics.flatMap((c) => ['--clinic', c]),
    '--password-stdin', ...(totp ? ['--with-totp'] : []), '--json', '--data-dir', fleetd.dataDir];
  const added = JSON.parse(execFileSync(path.join(BIN, 'fleetd'), args, { input: `${password}\n` }).toString());
  if (totp) TOTP_USERS.set(`${fleetd.dataDir}\n${user}`, { secret: added.totp_secret, last: -1 });
  return added;
}

/** Keeps a TOTP `secret` enrolled in the console for [nextTotp]; `lastStep` is the step already used. */
export function rememberTotp(fleetd, user, secret, lastStep) {
  TOTP_USERS.set(`${fleetd.dataDir}\n${user}`, { secret, last: lastStep });
}
