// No visit media at rest — proven, not claimed. A complete visit (Join on the kiosk, a clinician
// joins from Chromium, two-way audio and video for 20 s asserted from both sides' counters, End)
// runs with the kiosk's whole process tree, from its first instruction to its exit, under a
// file-write tracer (strace -f on the write family, each file descriptor decorated with its path).
// The test fails if any call puts bytes in, creates, truncates or renames onto a regular file
// outside the kiosk's state directory, or if more than 8 KiB reach the state directory during the
// visit. Pipes (its stdout/stderr, captured by this test), sockets, devices, eventfds and memfds
// are not files at rest. It prints what it measured.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STRACE_ARGS, parseTrace, summarise } from './filewrites.mjs';
import {
  ARTIFACTS, consoleInbound, enrolKiosk, requireParts, signIn, startBrowser, startFleetd,
  startSwtpm, waitFor,
} from './harness.mjs';

const USER = 'dr-at-rest';
const PASSWORD = 'correct horse battery staple';
const MEDIA_SECONDS = 20;
const STATE_BYTES_LIMIT = 8 * 1024;
const STRACE = '/usr/bin/strace';

const now = () => Date.now() / 1000; // the tracer's -ttt clock

/** The traced kiosk's own process id: strace's child. */
function tracedPid(stracePid) {
  const children = fs.readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8').trim().split(/\s+/);
  return Number(children[0]);
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

const kib = (n) => `${((n || 0) / 1024).toFixed(1)} KiB`;

describe('no visit media at rest: a whole visit writes no file outside the state directory', () => {
  let fleetd; let tpm; let kiosk; let browser; let page; let kioskPid; let stateDir; let trace;

  before(async () => {
    requireParts();
    if (!fs.existsSync(STRACE)) throw new Error(`${STRACE} is missing: run .ci/deps (it installs strace)`);
    // GStreamer rewrites its plugin registry cache (~/.cache/gstreamer-1.0) when plugins changed
    // since it was last written: brought up to date here, before the trace, so that a package
    // just installed is not taken for the kiosk's doing. (The appliance's image builds it.)
    execFileSync('gst-inspect-1.0', ['fakesink'], { stdio: 'ignore' });
    fleetd = await startFleetd(USER, PASSWORD);
    tpm = await startSwtpm();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-kiosk-at-rest-'));
    trace = path.join(ARTIFACTS, 'at-rest.trace');
    fs.rmSync(trace, { force: true });
    ({ kiosk } = await enrolKiosk(fleetd, tpm, stateDir, {
      name: 'telekiosk-at-rest', prefix: [STRACE, ...STRACE_ARGS, '-o', trace],
    }));
    kioskPid = tracedPid(kiosk.proc.pid);
    browser = await startBrowser();
    page = await signIn(browser, fleetd, USER, PASSWORD);
  });

  after(async () => {
    await browser?.close();
    if (kiosk && !kiosk.exitedNow() && kioskPid) {
      try { process.kill(kioskPid, 'SIGTERM'); } catch { /* gone already */ }
    }
    await kiosk?.stop();
    await tpm?.stop();
    await fleetd?.stop();
  });

  it('a visit with two-way media, then the trace of the kiosk\'s process tree', async () => {
    await kiosk.waitScreen('idle');
    const joinAt = now();
    await kiosk.join();
    await kiosk.waitScreen('waiting');
    const join = page.locator('button.join').first();
    await join.waitFor({ state: 'visible', timeout: 15000 });
    await join.click();
    await kiosk.waitScreen('in_call', 20000);
    await page.locator('#call').waitFor({ state: 'visible' });

    // Media both ways before the measured stretch starts.
    const counters = async () => {
      const k = kiosk.stats();
      const c = (await consoleInbound(page)) || { framesDecoded: 0, audioPackets: 0 };
      return { kioskVideo: k.remote_video_frames, kioskAudio: k.remote_audio_buffers,
        consoleVideo: c.framesDecoded, consoleAudio: c.audioPackets };
    };
    await waitFor('two-way media', async () => {
      const c = await counters();
      return c.kioskVideo > 10 && c.kioskAudio > 10 && c.consoleVideo > 10 && c.consoleAudio > 10;
    }, 30000, 250);

    // MEDIA_SECONDS of two-way audio and video, every counter rising in every 5 s.
    const start = await counters();
    const cpuStart = cpuSeconds(kioskPid);
    let last = start;
    for (let s = 5; s <= MEDIA_SECONDS; s += 5) {
      await new Promise((r) => setTimeout(r, 5000));
      const c = await counters();
      for (const k of Object.keys(c)) assert.ok(c[k] > last[k], `${k} stalled at ${c[k]} (${s} s into the visit)`);
      last = c;
    }
    const cpu = cpuSeconds(kioskPid) - cpuStart;
    const d = Object.fromEntries(Object.keys(last).map((k) => [k, last[k] - start[k]]));
    assert.ok(d.kioskVideo >= 5 * MEDIA_SECONDS, `kiosk decoded ${d.kioskVideo} frames in ${MEDIA_SECONDS} s`);
    assert.ok(d.consoleVideo >= 5 * MEDIA_SECONDS, `console decoded ${d.consoleVideo} frames in ${MEDIA_SECONDS} s`);
    assert.ok(d.kioskAudio >= 10 * MEDIA_SECONDS, `kiosk played ${d.kioskAudio} audio buffers in ${MEDIA_SECONDS} s`);
    assert.ok(d.consoleAudio >= 10 * MEDIA_SECONDS, `console got ${d.consoleAudio} audio packets in ${MEDIA_SECONDS} s`);

    await kiosk.end();
    await kiosk.waitScreen('ended');
    await kiosk.waitScreen('idle', 15000);
    const endAt = now();

    // The kiosk exits (stdin `quit`), and the tracer with it: the trace is complete.
    kiosk.proc.stdin.write('quit\n');
    await Promise.race([kiosk.exited, new Promise((r) => setTimeout(r, 15000))]);
    assert.ok(kiosk.exitedNow(), 'the traced kiosk did not exit after quit');

    const events = parseTrace(fs.readFileSync(trace, 'utf8'), { cwd: process.cwd() });
    const whole = summarise(events, { stateDir });
    const visit = summarise(events, { stateDir, from: joinAt, to: endAt });
    const classes = (b) => Object.entries(b).sort().map(([k, v]) => `${k} ${kib(v)}`).join(', ') || 'none';
    console.log(`MEASURED at rest: ${events.length} write-family calls traced over the kiosk's life ` +
      `(${(endAt - joinAt).toFixed(1)} s visit, ${MEDIA_SECONDS} s of two-way media: kiosk +${d.kioskVideo} frames ` +
      `+${d.kioskAudio} audio buffers, console +${d.consoleVideo} frames +${d.consoleAudio} audio packets; ` +
      `kiosk CPU ${((100 * cpu) / MEDIA_SECONDS).toFixed(0)}% of a core, traced)`);
    console.log(`MEASURED at rest, whole run: bytes written by class: ${classes(whole.bytes)}; ` +
      `files opened for writing: ${JSON.stringify(whole.opened)}; memfds ${whole.memfds}; failed attempts ${whole.refused}`);
    console.log(`MEASURED at rest, during the visit: bytes written by class: ${classes(visit.bytes)}; ` +
      `files opened for writing: ${JSON.stringify(visit.opened)}; state dir ${kib(visit.bytes.state)} (limit ${kib(STATE_BYTES_LIMIT)})`);

    const shown = whole.violations.slice(0, 10).map((v) => `${v.kind} ${v.path} (${v.bytes} bytes, pid ${v.pid})`);
    assert.deepEqual(shown, [], `the kiosk wrote outside its state directory ${stateDir}`);
    assert.ok((visit.bytes.state || 0) <= STATE_BYTES_LIMIT,
      `the kiosk wrote ${visit.bytes.state} bytes to its state directory during the visit`);
    fs.rmSync(trace); // only a failing run's trace is kept, for its reader
  });
});
