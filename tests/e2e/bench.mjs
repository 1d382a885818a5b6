// Benchmark of a visit on loopback, with every part real (fleetd + mosquitto, telekiosk
// headless with the dev profile at 720p30, Chromium as the clinician). Prints figures; asserts
// nothing. Run with `bash .ci/bench` (release build).
//
//   join → queued       patient taps Join → the clinician's console shows the kiosk waiting
//   accept → kiosk      clinician clicks Join → first clinician frame decoded on the kiosk
//   accept → console    clinician clicks Join → first kiosk frame decoded in the browser
//   call load           kiosk CPU (% of one core) and RSS over 30 s of a call
//   start → connected   kiosk process start → online over mutual TLS with its TPM key (enrolled)

import fs from 'node:fs';
import {
  Kiosk, consoleInbound, enrolKiosk, requireParts, signIn, startBrowser, startFleetd, startSwtpm, waitFor,
} from './harness.mjs';

const VISITS = Number(process.env.TK_BENCH_VISITS || 5);
const CALL_SECONDS = Number(process.env.TK_BENCH_CALL_SECONDS || 30);
const CLK_TCK = 100;

function procStats(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return { cpuTicks, rssKb };
}

function summary(name, values) {
  const v = [...values].sort((a, b) => a - b);
  const median = v[Math.floor(v.length / 2)];
  console.log(`${name.padEnd(22)} median ${median.toFixed(0).padStart(5)} ms   min ${v[0].toFixed(0).padStart(5)}   max ${v[v.length - 1].toFixed(0).padStart(5)}   (n=${v.length})`);
}

requireParts();
const fleetd = await startFleetd('bench', 'bench-password-123');
const tpm = await startSwtpm();
let { kiosk, stateDir } = await enrolKiosk(fleetd, tpm);
const browser = await startBrowser();
try {
  const page = await signIn(browser, fleetd, 'bench', 'bench-password-123');
  const queued = []; const toKiosk = []; const toConsole = [];
  for (let i = 0; i <= VISITS; i++) {
    await kiosk.waitScreen('idle', 20000);
    const t0 = performance.now();
    await kiosk.join();
    await page.locator('button.join').first().waitFor({ state: 'visible', timeout: 15000 });
    const t1 = performance.now();
    const mark = kiosk.lines.length;
    await page.locator('button.join').first().click();
    const t2 = performance.now();
    const [kioskFrame, consoleFrame] = await Promise.all([
      waitFor('first clinician frame on the kiosk', () => {
        const i = kiosk.lines.findIndex((l, n) => n >= mark && l.includes('"first_remote_frame"'));
        return i >= 0 ? kiosk.times[i] : false;
      }, 20000, 5),
      waitFor('first kiosk frame in the browser', async () => {
        const s = await consoleInbound(page);
        return s && s.framesDecoded > 0 ? performance.now() : false;
      }, 20000, 20),
    ]);
    if (i > 0) { // the first visit warms caches; it is not counted
      queued.push(t1 - t0); toKiosk.push(kioskFrame - t2); toConsole.push(consoleFrame - t2);
    }
    if (i < VISITS) {
      await kiosk.waitScreen('in_call');
      await kiosk.end();
      await kiosk.waitScreen('ended');
    }
  }
  console.log(`\nVisit latency on loopback (${VISITS} visits after one warm-up):`);
  summary('join → queued', queued);
  summary('accept → kiosk frame', toKiosk);
  summary('accept → console frame', toConsole);

  await kiosk.waitScreen('in_call');
  await new Promise((r) => setTimeout(r, 3000));
  const pid = kiosk.proc.pid;
  const start = procStats(pid); const rss = [];
  const framesStart = kiosk.stats().remote_video_frames;
  const consoleStart = (await consoleInbound(page)).framesDecoded;
  const t0 = performance.now();
  for (let s = 0; s < CALL_SECONDS; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(procStats(pid).rssKb);
  }
  const secs = (performance.now() - t0) / 1000;
  const end = procStats(pid);
  const cpu = ((end.cpuTicks - start.cpuTicks) / CLK_TCK / secs) * 100;
  const fleetdRss = procStats(fleetd.proc.pid).rssKb;
  const kioskFps = (kiosk.stats().remote_video_frames - framesStart) / secs;
  const consoleFps = ((await consoleInbound(page)).framesDecoded - consoleStart) / secs;
  console.log(`\nA ${CALL_SECONDS} s call (kiosk sends 1280x720@30 H.264 from the dev profile):`);
  console.log(`kiosk CPU              ${cpu.toFixed(1)} % of one core`);
  console.log(`kiosk RSS              mean ${(rss.reduce((a, b) => a + b, 0) / rss.length / 1024).toFixed(1)} MiB, max ${(Math.max(...rss) / 1024).toFixed(1)} MiB`);
  console.log(`fleetd RSS             ${(fleetdRss / 1024).toFixed(1)} MiB (mosquitto not included)`);
  console.log(`clinician video shown  ${kioskFps.toFixed(1)} fps on the kiosk`);
  console.log(`kiosk video decoded    ${consoleFps.toFixed(1)} fps in the browser`);
  await kiosk.end();
  await kiosk.waitScreen('ended');

  const starts = [];
  for (let i = 0; i < 5; i++) {
    await kiosk.stop();
    const t0 = performance.now();
    kiosk = new Kiosk(fleetd, { tpm, stateDir, name: `telekiosk-start-${i}` });
    await kiosk.waitOnline();
    starts.push(kiosk.times[kiosk.lines.findIndex((l) => l.includes('"online":true'))] - t0);
  }
  console.log('\nKiosk start (already enrolled, swtpm):');
  summary('start → connected', starts);
} finally {
  await browser.close();
  await kiosk.stop();
  await tpm.stop();
  await fleetd.stop();
}
