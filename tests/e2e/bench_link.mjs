// Benchmark of visits across emulated rural links: kiosk ↔ Chromium through `linkemu`. Prints
// two tables, one row per link profile; asserts nothing, but fails (exit 1) when a part is
// missing or a visit does not connect. Needs root (network namespaces). Run with `bash .ci/bench`.
//
//   tk-clinic   (10.77.0.1): telekiosk --headless and its swtpm
//   tk-hospital (10.77.0.2): fleetd + mosquitto, Chromium, and this script's visit driver
//
// This process (in the root namespace) runs one `linkemu tun` per profile, then itself again as
// `ip netns exec tk-hospital node bench_link.mjs --visit`, which runs one visit and writes its
// figures; back here they are joined with the link's per-packet log, and everything the run
// started (namespaces, processes, /etc/netns/tk-clinic) is removed, also on failure.
//
// Env: TK_BENCH_LINK_SECONDS (measured seconds, default 45; the step run 80/45 of it),
// TK_BENCH_LINK_WARMUP (15), TK_BENCH_LINK_PROFILES (e.g. "good,floor"), TK_BENCH_LINK_SEED (1),
// TK_BENCH_NO_STAMP=1 (no glass-to-glass: the kiosk lacks `stamp_time`), TK_BENCH_NO_FEC=1
// (no ULPFEC A/B rows: the kiosk lacks `fec`), TK_LINKEMU (the linkemu binary).

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  STAMPED_CAMERA, consoleStats, freezesFromFrames, linkSeconds, longestAbove, mean, pct, perSecond,
  printResults, procStats, remoteVideoSeen, watchRemoteVideo,
} from './linkbench.mjs';

// Figures and logs go to artifacts/bench unless TK_ARTIFACTS says otherwise (set before the
// harness reads it).
process.env.TK_ARTIFACTS ||= path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../artifacts/bench');
const {
  ARTIFACTS, BIN, Child, ROOT, consoleInbound, enrolKiosk, requireParts, signIn, startBrowser,
  startFleetd, startSwtpm, waitFor,
} = await import('./harness.mjs');

const CLINIC = 'tk-clinic'; const HOSPITAL = 'tk-hospital';
const ADDR = { [CLINIC]: '10.77.0.1', [HOSPITAL]: '10.77.0.2' };
const SECONDS = Number(process.env.TK_BENCH_LINK_SECONDS || 45);
const WARMUP = Number(process.env.TK_BENCH_LINK_WARMUP || 15);
const SEED = process.env.TK_BENCH_LINK_SEED || '1';
const STAMP = process.env.TK_BENCH_NO_STAMP !== '1';
const FEC = process.env.TK_BENCH_NO_FEC !== '1';
const LINKEMU = process.env.TK_LINKEMU || path.join(BIN, 'linkemu');
const HOSTS_DIR = `/etc/netns/${CLINIC}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (obj) => console.log(JSON.stringify(obj));
const running = {}; // this run's linkemu and visit driver, for a stop by signal

// kbps: the link's rate each way; steps: [seconds after media connect, linkemu change, new kbps].
const STEP = SECONDS / 45; // the step run scales with TK_BENCH_LINK_SECONDS
const RUNS = [
  { run: 'good', link: 'good', kbps: 20000 },
  { run: 'lte-poor', link: 'lte-poor', kbps: 600 },
  { run: 'lte-poor+fec', link: 'lte-poor', kbps: 600, fec: true },
  { run: 'satellite', link: 'satellite', kbps: 1000 },
  { run: 'floor', link: 'floor', kbps: 300 },
  { run: 'floor+fec', link: 'floor', kbps: 300, fec: true },
  { run: 'step', link: 'rate=2500k,delay=20ms', kbps: 2500, seconds: Math.round(80 * STEP),
    steps: [[20 * STEP, 'both rate=300k', 300], [50 * STEP, 'both rate=2500k', 2500]] },
].filter((r) => FEC || !r.fec)
  .filter((r) => !process.env.TK_BENCH_LINK_PROFILES || process.env.TK_BENCH_LINK_PROFILES.split(',').includes(r.run));

/** dev.toml with `stamp_time` and/or `fec` added to [video], in `dir`. */
function benchProfile(dir, { stamp, fec }) {
  const keys = [stamp && 'stamp_time = true', fec && 'fec = true'].filter(Boolean);
  const text = fs.readFileSync(path.join(ROOT, 'hw/profiles/dev.toml'), 'utf8');
  if (!/^\[video\]$/m.test(text)) throw new Error('hw/profiles/dev.toml has no [video] table');
  const file = path.join(dir, `bench-${keys.length ? keys.map((k) => k.split(' ')[0]).join('-') : 'plain'}.toml`);
  fs.writeFileSync(file, text.replace(/^\[video\]$/m, ['[video]', ...keys].join('\n')));
  return file;
}

function nsExists(ns) {
  return fs.existsSync(`/var/run/netns/${ns}`);
}

/** Ends whatever still runs in the bench's namespaces, deletes them and the hosts file. */
function cleanUp() {
  for (const ns of [CLINIC, HOSPITAL].filter(nsExists)) {
    let pids = [];
    try { pids = execFileSync('ip', ['netns', 'pids', ns]).toString().split(/\s+/).filter(Boolean); } catch { /* gone */ }
    for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* exited */ } }
    try { execFileSync('ip', ['netns', 'delete', ns], { stdio: 'pipe' }); } catch (e) { console.error(`ip netns delete ${ns}: ${e.stderr}`); }
  }
  fs.rmSync(HOSTS_DIR, { recursive: true, force: true });
  try { fs.rmdirSync('/etc/netns'); } catch { /* not empty, or not ours */ }
}

/** Runs this script as the visit driver inside tk-hospital; resolves with its exit code. */
function runVisit(cfg, onEvent) {
  const child = spawn('ip', ['netns', 'exec', HOSPITAL, process.execPath, fileURLToPath(import.meta.url), '--visit'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TK_LINK_RUN: JSON.stringify(cfg), TK_ARTIFACTS: cfg.artifacts } });
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let event;
    try { event = JSON.parse(line); } catch { /* not ours */ }
    if (event && event.bench) onEvent(event); else console.log(`  ${line}`);
  });
  const done = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return { child, done };
}

/** One profile: link up, visit, link down; returns the run's figures. */
async function runProfile(spec, profiles) {
  const artifacts = path.join(ARTIFACTS, `link-${spec.run}`);
  fs.rmSync(artifacts, { recursive: true, force: true });
  fs.mkdirSync(artifacts, { recursive: true });
  for (const ns of [CLINIC, HOSPITAL]) {
    if (nsExists(ns)) throw new Error(`network namespace ${ns} exists: another bench is running, or delete it (ip netns delete ${ns})`);
  }
  // The kiosk reaches fleetd by this machine's name, which its certificate covers.
  fs.mkdirSync(HOSTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(HOSTS_DIR, 'hosts'), `127.0.0.1 localhost\n${ADDR[HOSPITAL]} ${os.hostname()}\n`);
  const linkemu = new Child(`link-${spec.run}/linkemu`, LINKEMU, ['tun', '--ns-a', CLINIC, '--ns-b', HOSPITAL,
    '--addr-a', ADDR[CLINIC], '--addr-b', ADDR[HOSPITAL], '--a-to-b', spec.link, '--b-to-a', spec.link,
    '--seed', SEED, '--log-dir', artifacts]);
  let visit;
  running.linkemu = linkemu;
  try {
    const ready = await linkemu.waitLine('ready', (l) => l.includes('"event":"ready"'), 15000);
    const origin = performance.timeOrigin + linkemu.times[linkemu.lines.indexOf(ready)];
    const changes = []; const timers = []; let window;
    const out = path.join(artifacts, 'visit.json');
    const cfg = { run: spec.run, profile: spec.fec ? profiles.fec : profiles.base, stamp: STAMP, out,
      seconds: spec.seconds || SECONDS, warmup: WARMUP, artifacts };
    visit = running.visit = runVisit(cfg, (event) => {
      if (event.bench === 'media') {
        for (const [secs, change, kbps] of spec.steps || []) {
          timers.push(setTimeout(() => {
            linkemu.proc.stdin.write(`${change}\n`);
            changes.push({ at: Date.now(), change, kbps });
          }, event.at + secs * 1000 - Date.now()));
        }
      }
      if (event.bench === 'window') window = event;
      if (event.bench === 'progress') console.log(`  ${spec.run}: ${event.what}`);
    });
    const code = await visit.done;
    timers.forEach(clearTimeout);
    if (code !== 0) throw new Error(`the visit over "${spec.run}" failed (${code}); logs in ${artifacts}`);
    const result = JSON.parse(fs.readFileSync(out, 'utf8'));
    if (!result.route || !result.route.remote.startsWith(`${ADDR[CLINIC]}:`)) {
      throw new Error(`the media did not cross the emulated link (selected pair ${JSON.stringify(result.route)})`);
    }
    await linkemu.stop(); // SIGTERM: it writes its logs and prints its summaries
    const events = linkemu.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const refused = events.find((e) => e.event === 'error');
    if (refused) throw new Error(`linkemu refused \`${refused.input}\`: ${refused.message}`);
    result.link = linkFigures(spec, artifacts, origin, window, changes);
    result.link.profile = spec.link; result.link.seed = SEED; result.link.changes = changes;
    result.link.applied = events.filter((e) => e.event === 'applied');
    result.link.linkemuSummary = events.find((e) => e.event === 'summary');
    fs.writeFileSync(path.join(ARTIFACTS, `link-${spec.run}.json`), `${JSON.stringify(result, null, 1)}\n`);
    return result;
  } finally {
    if (visit && visit.child.exitCode === null && visit.child.signalCode === null) visit.child.kill('SIGTERM');
    cleanUp();
    await linkemu.stop();
  }
}

/** Offered and delivered kb/s each way over the measured window, from linkemu's CSV logs. */
function linkFigures(spec, dir, origin, window, changes) {
  const out = {};
  for (const [name, file] of [['kioskToBrowser', 'a-to-b.csv'], ['browserToKiosk', 'b-to-a.csv']]) {
    const csv = path.join(dir, file);
    if (!fs.existsSync(csv)) throw new Error(`linkemu wrote no ${csv} (--log-dir)`);
    const s = linkSeconds(csv, origin, window.from, window.to);
    const limit = s.offered.map((_, i) => {
      const t = window.from + i * 1000 + 500;
      return changes.filter((c) => c.at <= t).reduce((kbps, c) => c.kbps, spec.kbps);
    });
    out[name] = {
      linkKbps: spec.kbps, offeredP95: pct(s.offered, 95), offeredMean: mean(s.offered),
      deliveredMean: mean(s.delivered), longestSecondsAbove: longestAbove(s.offered, limit),
      packets: s.packets, dropped: s.dropped, offeredPerSecond: s.offered.map(Math.round),
      deliveredPerSecond: s.delivered.map(Math.round),
    };
  }
  return out;
}

async function main() {
  if (process.getuid() !== 0) throw new Error('bench_link.mjs needs root (network namespaces, TUN devices)');
  requireParts();
  if (!fs.existsSync(LINKEMU)) throw new Error(`${LINKEMU} is missing: cargo build --release -p telekiosk-linkemu`);
  if (!RUNS.length) throw new Error(`no run matches TK_BENCH_LINK_PROFILES=${process.env.TK_BENCH_LINK_PROFILES}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-linkbench-'));
  const profiles = { base: benchProfile(tmp, { stamp: STAMP }), fec: benchProfile(tmp, { stamp: STAMP, fec: true }) };
  const stop = (signal) => {
    running.visit?.child.kill('SIGKILL');
    running.linkemu?.proc.kill('SIGKILL');
    cleanUp();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', stop); process.on('SIGTERM', stop);
  const results = []; const failures = [];
  for (const spec of RUNS) {
    console.log(`\n${spec.run}: link ${spec.link} each way, seed ${SEED}, ${spec.seconds || SECONDS} s measured after ${WARMUP} s`);
    try {
      results.push(await runProfile(spec, profiles));
    } catch (e) {
      console.error(`${spec.run}: ${e.message}`);
      failures.push(spec.run);
    }
  }
  if (results.length) printResults(results);
  if (!STAMP) console.log('\n(glass-to-glass not measured: TK_BENCH_NO_STAMP=1)');
  console.log(`Per run: ${ARTIFACTS}/link-<profile>.json and link-<profile>/ (logs, linkemu CSV)`);
  fs.rmSync(tmp, { recursive: true, force: true });
  if (failures.length) throw new Error(`runs that failed: ${failures.join(', ')}`);
}

// ---------- the visit driver, inside tk-hospital ----------

/** Why the kiosk left the call, from its last warning or error line. */
function kioskReason(kiosk) {
  const lines = kiosk.stderr.split('\n').filter((l) => / (WARN|ERROR) /.test(l));
  const line = lines.findLast((l) => l.includes('media failed')) || lines[lines.length - 1];
  return line ? line.replace(/^\S+\s+/, '') : 'no warning in its log';
}

/** A watch that rejects as soon as the kiosk ends the visit begun at line `mark`, or exits. */
function watchDrop(kiosk, mark) {
  let timer;
  const dropped = new Promise((_, reject) => {
    timer = setInterval(() => {
      const ended = kiosk.lines.slice(mark).some((l) => /"event":"screen","screen":"(ended|idle)"/.test(l));
      if (!ended && !kiosk.exitedNow()) return;
      clearInterval(timer);
      reject(new Error(`the kiosk ${ended ? 'ended the visit' : 'exited'}: ${kioskReason(kiosk)}`));
    }, 100);
  });
  dropped.catch(() => {}); // awaited through race() only
  return { race: (promise) => Promise.race([promise, dropped]), stop: () => clearInterval(timer) };
}

async function visitMain() {
  const cfg = JSON.parse(process.env.TK_LINK_RUN);
  const prefix = ['ip', 'netns', 'exec', CLINIC];
  const [user, password] = ['bench', 'bench-password-123'];
  requireParts();
  let fleetd; let tpm; let kiosk; let browser; let stateDir;
  try {
    say({ bench: 'progress', what: 'enrolling the kiosk across the link' });
    fleetd = await startFleetd(user, password, { listen: '0.0.0.0', host: os.hostname() });
    tpm = await startSwtpm(undefined, { prefix });
    ({ kiosk, stateDir } = await enrolKiosk(fleetd, tpm, undefined, { prefix, profile: cfg.profile }));
    browser = await startBrowser();
    const page = await signIn(browser, fleetd, user, password, { initScript: cfg.stamp ? STAMPED_CAMERA : undefined });
    await watchRemoteVideo(page, cfg.stamp);
    await kiosk.waitScreen('idle', 30000);
    await kiosk.join();
    await page.locator('button.join').first().waitFor({ state: 'visible', timeout: 60000 });
    const mark = kiosk.lines.length;
    const joined = performance.now();
    await page.locator('button.join').first().click();
    const drop = watchDrop(kiosk, mark);
    const [toKiosk, toBrowser] = await drop.race(Promise.all([
      waitFor('first clinician frame on the kiosk', () => {
        const i = kiosk.lines.findIndex((l, n) => n >= mark && l.includes('"first_remote_frame"'));
        return i >= 0 ? kiosk.times[i] - joined : false;
      }, 90000, 10),
      waitFor('first kiosk frame in the browser', async () => {
        const s = await consoleInbound(page);
        return s && s.framesDecoded > 0 ? performance.now() - joined : false;
      }, 90000, 20),
    ]));
    say({ bench: 'media', at: Date.now() });
    say({ bench: 'progress', what: `media up (browser ${toBrowser.toFixed(0)} ms, kiosk ${toKiosk.toFixed(0)} ms); warming up` });
    await drop.race(sleep(cfg.warmup * 1000));
    const result = await drop.race(measure(cfg, page, kiosk));
    drop.stop();
    result.firstFrame = { toBrowserMs: toBrowser, toKioskMs: toKiosk };
    fs.writeFileSync(cfg.out, JSON.stringify(result));
    await kiosk.end();
    await kiosk.waitScreen('ended', 30000).catch(() => {});
  } finally {
    await browser?.close().catch(() => {});
    await kiosk?.stop(); await tpm?.stop(); await fleetd?.stop();
    for (const dir of [stateDir, tpm?.dir, fleetd?.dataDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Samples the call once a second for cfg.seconds; returns the run's figures (not the link's). */
async function measure(cfg, page, kiosk) {
  const from = Date.now();
  say({ bench: 'progress', what: `measuring ${cfg.seconds} s` });
  const samples = [];
  for (let i = 0; i <= cfg.seconds; i++) {
    await sleep(Math.max(0, from + i * 1000 - Date.now()));
    if (kiosk.screen() !== 'in_call') throw new Error(`the visit dropped after ${i} s measured: kiosk screen "${kiosk.screen()}": ${kioskReason(kiosk)}`);
    samples.push({ t: Date.now(), s: await consoleStats(page), p: procStats(kiosk.proc.pid) });
  }
  const to = samples[samples.length - 1].t;
  say({ bench: 'window', from, to });
  const [first, last] = [samples[0], samples[samples.length - 1]];
  const delta = (f) => (f(last.s) != null && f(first.s) != null ? f(last.s) - f(first.s) : null);
  const video = (k) => (s) => s && s.video && s.video[k];
  const audio = (k) => (s) => s && s.audio && s.audio[k];
  const fps = perSecond(samples.map(({ t, s }) => ({ t, value: video('framesDecoded')(s) })));
  const seen = await remoteVideoSeen(page, from, to);
  const counted = first.s?.video?.freezeCount !== undefined;
  const computed = freezesFromFrames(seen.frames);
  const concealed = delta(audio('concealedSamples')); const received = delta(audio('totalSamplesReceived'));
  const pairs = samples.map(({ s }) => s && s.pair).filter(Boolean);
  const secs = (to - from) / 1000;
  // The kiosk's once-a-second lines and glass-to-glass lines in the window.
  const inWindow = kiosk.lines.map((l, i) => [l, performance.timeOrigin + kiosk.times[i]])
    .filter(([l, t]) => t >= from && t < to && l.startsWith('{')).map(([l]) => JSON.parse(l));
  const q = inWindow.filter((e) => e.event === 'stats' && e.quality).map((e) => e.quality);
  const qv = (k) => q.map((x) => x[k]);
  const levels = qv('level').reduce((m, l) => ({ ...m, [l]: (m[l] || 0) + 1 }), {});
  const frames = inWindow.filter((e) => e.event === 'stats').map((e) => e.remote_video_frames);
  const kioskG2g = inWindow.filter((e) => e.event === 'g2g').map((e) => e.ms);
  const rss = samples.map(({ p }) => p.rssKb);
  return {
    run: cfg.run, window: { from, to, seconds: secs },
    route: pairs.length ? { local: pairs[pairs.length - 1].local, remote: pairs[pairs.length - 1].remote } : null,
    browser: {
      fpsP50: pct(fps, 50), fpsP5: pct(fps, 5), fpsPerSecond: fps.map((x) => Math.round(x * 10) / 10),
      freezes: counted ? delta(video('freezeCount')) : computed.count,
      freezeSeconds: counted ? delta(video('totalFreezesDuration')) : computed.seconds,
      freezesFrom: counted ? 'inbound-rtp freezeCount' : 'requestVideoFrameCallback gaps',
      audioConcealedPct: received ? (100 * concealed) / received : null,
      nacks: delta(video('nackCount')), plis: delta(video('pliCount')),
      availableOutgoingKbps: pct(pairs.map((p) => p.availableOutgoingBitrate / 1000), 50),
      rttMs: pct(pairs.map((p) => p.currentRoundTripTime * 1000), 50),
      frameSize: last.s?.video ? `${last.s.video.frameWidth}x${last.s.video.frameHeight}` : null,
    },
    kiosk: {
      qualityLines: q.length, level: Object.entries(levels).sort((a, b) => b[1] - a[1]).map(([l, n]) => `${l}:${n}`).join(' '),
      receivedFpsP50: q.length ? pct(qv('received_fps'), 50) : (frames.length > 1 ? (frames[frames.length - 1] - frames[0]) / secs : null),
      concealedPermilleMean: q.length ? mean(qv('concealed_permille')) : null,
      estimateKbps: pct(qv('estimate_kbps'), 50), sentKbps: pct(qv('sent_kbps'), 50), sentFps: pct(qv('sent_fps'), 50),
      rttMs: pct(qv('rtt_ms'), 50), lossPermille: pct(qv('loss_permille'), 50), latencyMs: pct(qv('latency_ms'), 50),
      videoPausedSeconds: qv('video_paused').filter(Boolean).length,
    },
    g2g: {
      kioskToBrowserP50: pct(seen.g2g, 50), kioskToBrowserP95: pct(seen.g2g, 95), kioskToBrowserN: seen.g2g.length,
      browserUnreadable: seen.unreadable,
      browserToKioskP50: pct(kioskG2g, 50), browserToKioskP95: pct(kioskG2g, 95), browserToKioskN: kioskG2g.length,
    },
    load: {
      kioskCpuPct: ((last.p.cpuTicks - first.p.cpuTicks) / 100 / secs) * 100,
      kioskRssMeanMiB: mean(rss) / 1024, kioskRssMaxMiB: Math.max(...rss) / 1024,
    },
  };
}

const entry = process.argv.includes('--visit') ? visitMain : main;
entry().then(() => process.exit(0), (e) => {
  console.error(`bench_link${entry === visitMain ? ' (visit)' : ''}: ${e.stack || e}`);
  if (entry === main) cleanUp();
  process.exit(1);
});
