// Helpers of bench_link.mjs: the time stamp drawn into video (both ends of it in the browser),
// getStats() sampling, the link emulator's per-packet logs, and figures and tables.
//
// Stamp format (the kiosk draws and reads the same with `stamp_time = true` in its profile): the
// top band of the picture holds 32 square blocks, each width/32 pixels, left to right bits 31..0
// of Date.now() mod 2^32 (CLOCK_REALTIME in ms at capture); white = 1, black = 0, read at each
// block's centre pixel with a luma threshold of 128.

import fs from 'node:fs';

/**
 * Init script for the console page (test-only): getUserMedia answers with a 640x360 30 fps
 * canvas stream stamped at every animation frame, plus the real (fake-device) microphone.
 */
export const STAMPED_CAMERA = `(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    if (!constraints || !constraints.video) return real(constraints);
    const mic = constraints.audio ? await real({ audio: constraints.audio }) : null;
    const canvas = document.createElement('canvas');
    canvas.width = 640; canvas.height = 360;
    const ctx = canvas.getContext('2d');
    const B = canvas.width / 32;
    let n = 0;
    const draw = () => {
      n += 1;
      const stamp = Date.now() % 4294967296;
      ctx.fillStyle = 'hsl(' + ((n * 2) % 360) + ', 55%, 45%)';
      ctx.fillRect(0, B, 640, 360 - B);
      ctx.fillStyle = '#ddd';
      ctx.fillRect((n * 4) % 560, 120, 80, 80);
      ctx.fillStyle = '#111'; ctx.font = '28px sans-serif';
      ctx.fillText('telekiosk bench ' + n, 20, 330);
      for (let i = 0; i < 32; i++) {
        ctx.fillStyle = Math.floor(stamp / 2 ** (31 - i)) % 2 ? '#fff' : '#000';
        ctx.fillRect(i * B, 0, B, B);
      }
      requestAnimationFrame(draw);
    };
    draw();
    const video = canvas.captureStream(30).getVideoTracks();
    return new MediaStream([...video, ...(mic ? mic.getAudioTracks() : [])]);
  };
})();`;

/**
 * Watches the console's remote <video> with requestVideoFrameCallback: keeps each frame's
 * display time (ms since the epoch) and, with `stamp`, the glass-to-glass latency it carries.
 */
export async function watchRemoteVideo(page, stamp) {
  await page.evaluate((stamp) => {
    const video = document.getElementById('remote');
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const seen = (window.tkBench = { frames: [], g2g: [], unreadable: 0 });
    const onFrame = (now, meta) => {
      const shown = Date.now() + (meta.expectedDisplayTime - performance.now());
      seen.frames.push(shown);
      const w = meta.width; const block = w / 32; const band = Math.max(1, Math.round(block));
      if (stamp && w >= 64 && meta.height >= band) {
        if (canvas.width !== w || canvas.height !== band) { canvas.width = w; canvas.height = band; }
        ctx.drawImage(video, 0, 0, w, band, 0, 0, w, band);
        const px = ctx.getImageData(0, 0, w, band).data;
        const y = Math.floor(band / 2);
        let value = 0;
        for (let i = 0; i < 32; i++) {
          const o = (y * w + Math.floor((i + 0.5) * block)) * 4;
          value = value * 2 + (0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2] >= 128 ? 1 : 0);
        }
        let ms = (shown % 4294967296) - value;
        if (ms < -2147483648) ms += 4294967296;
        if (ms > 2147483648) ms -= 4294967296;
        if (ms > -50 && ms < 20000) seen.g2g.push([shown, ms]); else seen.unreadable += 1;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }, stamp);
}

/** What watchRemoteVideo saw between `from` and `to` (ms since the epoch). */
export async function remoteVideoSeen(page, from, to) {
  return page.evaluate(([from, to]) => {
    const s = window.tkBench;
    return {
      frames: s.frames.filter((t) => t >= from && t < to),
      g2g: s.g2g.filter(([t]) => t >= from && t < to).map(([, ms]) => ms),
      unreadable: s.unreadable,
    };
  }, [from, to]);
}

/** The console's media figures from getStats(): inbound video and audio, the selected pair. */
export async function consoleStats(page) {
  return page.evaluate(async () => {
    const pc = window.telekiosk && window.telekiosk.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const out = { video: null, audio: null, pair: null };
    let pairId;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && (r.kind === 'video' || r.kind === 'audio')) out[r.kind] = r;
      if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    });
    report.forEach((r) => {
      if (r.type === 'candidate-pair' && (r.id === pairId || (!pairId && r.nominated && r.state === 'succeeded'))) {
        const local = report.get(r.localCandidateId) || {};
        const remote = report.get(r.remoteCandidateId) || {};
        out.pair = { ...r, local: `${local.address}:${local.port}`, remote: `${remote.address}:${remote.port}` };
      }
    });
    return JSON.parse(JSON.stringify(out));
  });
}

/** CPU ticks (utime + stime, 1/100 s) and RSS (KiB) of a process, from /proc. */
export function procStats(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return { cpuTicks, rssKb };
}

/** Nearest-rank percentile `p` (0..100) of `values`; null when there are none. */
export function pct(values, p) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v[Math.max(0, Math.ceil((p / 100) * v.length) - 1)];
}

export const mean = (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);

/** Per-second differences of a counter sampled once a second (samples: [{t, value}]). */
export function perSecond(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1], samples[i]];
    if (a.value != null && b.value != null && b.t > a.t) out.push(((b.value - a.value) * 1000) / (b.t - a.t));
  }
  return out;
}

/**
 * Freezes from frame display times, as Chromium counts them: a gap of at least
 * max(3 × the mean of the last 30 gaps, that mean + 150 ms).
 */
export function freezesFromFrames(times) {
  const gaps = [];
  let count = 0; let total = 0;
  for (let i = 1; i < times.length; i++) {
    const gap = times[i] - times[i - 1];
    const recent = gaps.slice(-30);
    const avg = recent.length ? mean(recent) : gap;
    if (recent.length >= 5 && gap >= Math.max(3 * avg, avg + 150)) { count += 1; total += gap; }
    gaps.push(gap);
  }
  return { count, seconds: total / 1000 };
}

/**
 * Kilobits per second offered to and delivered by one direction of the link in each whole
 * second of [from, to) (ms since the epoch), from linkemu's per-packet CSV log; `origin` is
 * when linkemu's clock started (its ready line).
 */
export function linkSeconds(csvFile, origin, from, to) {
  const n = Math.max(0, Math.floor((to - from) / 1000));
  const offered = new Array(n).fill(0); const delivered = new Array(n).fill(0);
  let dropped = 0; let packets = 0;
  const lines = fs.readFileSync(csvFile, 'utf8').split('\n');
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const [tIn, size, verdict, at] = line.split(',');
    const tin = origin + Number(tIn) / 1000;
    const i = Math.floor((tin - from) / 1000);
    if (i >= 0 && i < n) {
      offered[i] += (Number(size) * 8) / 1000;
      packets += 1;
      if (verdict !== 'deliver') dropped += 1;
    }
    if (verdict === 'deliver') {
      const j = Math.floor((origin + Number(at) / 1000 - from) / 1000);
      if (j >= 0 && j < n) delivered[j] += (Number(size) * 8) / 1000;
    }
  }
  return { offered, delivered, packets, dropped };
}

/** Longest run of consecutive seconds in which `offered[i]` was above `limit[i]`. */
export function longestAbove(offered, limit) {
  let run = 0; let longest = 0;
  offered.forEach((kbps, i) => {
    run = kbps > limit[i] ? run + 1 : 0;
    longest = Math.max(longest, run);
  });
  return longest;
}

const fmt = (x, digits = 0) => (x == null || Number.isNaN(x) ? '–' : Number(x).toFixed(digits));
const pair = (a, b, digits = 0) => `${fmt(a, digits)}/${fmt(b, digits)}`;

/** Prints `rows` as an aligned table: `columns` is [[heading, (row) => text], …]. */
export function printTable(title, columns, rows) {
  const cells = rows.map((r) => columns.map(([, f]) => String(f(r))));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(columns.map(([h]) => h)));
  cells.forEach((c) => console.log(line(c)));
}

/** The two tables of the bench, one row per run. */
export function printResults(results) {
  printTable('Media (browser = clinician in tk-hospital, kiosk in tk-clinic; measured window):', [
    ['profile', (r) => r.run],
    ['join→browser ms', (r) => fmt(r.firstFrame.toBrowserMs)],
    ['join→kiosk ms', (r) => fmt(r.firstFrame.toKioskMs)],
    ['fps p50/p5', (r) => pair(r.browser.fpsP50, r.browser.fpsP5)],
    ['freezes n/s', (r) => `${fmt(r.browser.freezes)}/${fmt(r.browser.freezeSeconds, 1)}`],
    ['audio conc %', (r) => fmt(r.browser.audioConcealedPct, 2)],
    ['NACK/PLI', (r) => pair(r.browser.nacks, r.browser.plis)],
    ['kiosk rx fps', (r) => fmt(r.kiosk.receivedFpsP50)],
    ['kiosk conc ‰', (r) => fmt(r.kiosk.concealedPermilleMean, 1)],
    ['g2g k→b p50/p95', (r) => pair(r.g2g.kioskToBrowserP50, r.g2g.kioskToBrowserP95)],
    ['g2g b→k p50/p95', (r) => pair(r.g2g.browserToKioskP50, r.g2g.browserToKioskP95)],
  ], results);
  printTable('Rate and load (kb/s; offered = sent into the link, link = its rate; medians unless said):', [
    ['profile', (r) => r.run],
    ['browser out est', (r) => fmt(r.browser.availableOutgoingKbps)],
    ['browser RTT ms', (r) => fmt(r.browser.rttMs)],
    ['kiosk level', (r) => r.kiosk.level || '–'],
    ['kiosk est/sent', (r) => pair(r.kiosk.estimateKbps, r.kiosk.sentKbps)],
    ['kiosk fps/rtt/loss‰', (r) => `${fmt(r.kiosk.sentFps)}/${fmt(r.kiosk.rttMs)}/${fmt(r.kiosk.lossPermille)}`],
    ['k→b offered p95/link', (r) => pair(r.link.kioskToBrowser.offeredP95, r.link.kioskToBrowser.linkKbps)],
    ['s over link', (r) => fmt(r.link.kioskToBrowser.longestSecondsAbove)],
    ['k→b deliv', (r) => fmt(r.link.kioskToBrowser.deliveredMean)],
    ['b→k offered/deliv', (r) => pair(r.link.browserToKiosk.offeredMean, r.link.browserToKiosk.deliveredMean)],
    ['kiosk CPU %', (r) => fmt(r.load.kioskCpuPct, 1)],
    ['RSS MiB', (r) => fmt(r.load.kioskRssMeanMiB, 1)],
  ], results);
}
