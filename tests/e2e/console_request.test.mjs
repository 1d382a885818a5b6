// The consoles' one API helper (common.js `request`), run in Node with `fetch` replaced: how it
// answers a 429 from fleetd. No browser is needed for this; the e2e tests cover the rest.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './harness.mjs';

/** @type {typeof import('../../src/fleetd/src/http/assets/common.js')} */
let common;
const calls = [];
/** Answers in turn; each is [status, headers]. */
let answers = [];

before(async () => {
  // The assets are ES modules served as .js; Node reads a copy named .mjs as one.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-console-'));
  const copy = path.join(dir, 'common.mjs');
  fs.copyFileSync(path.join(ROOT, 'src/fleetd/src/http/assets/common.js'), copy);
  globalThis.fetch = async (url, init) => {
    calls.push({ url, method: init.method, at: Date.now() });
    const [status, headers] = answers.shift();
    return new Response(status === 204 ? null : JSON.stringify({ error: `status ${status}` }),
      { status, headers });
  };
  common = await import(copy);
});

describe('the consoles\' request helper and a busy fleetd', () => {
  it('a read refused with 429 waits the Retry-After it was given and tries once more', async () => {
    calls.length = 0;
    answers = [[429, { 'Retry-After': '1' }], [200, {}]];
    const answer = await common.request('GET', '/api/me');
    assert.equal(answer.status, 200);
    assert.equal(calls.length, 2);
    assert.ok(calls[1].at - calls[0].at >= 950, `retried after ${calls[1].at - calls[0].at} ms`);
  });

  it('a read refused twice is not retried a second time', async () => {
    calls.length = 0;
    answers = [[429, { 'Retry-After': '1' }], [429, { 'Retry-After': '1' }]];
    const answer = await common.request('GET', '/api/me');
    assert.equal(answer.status, 429);
    assert.equal(calls.length, 2);
  });

  it('a change refused with 429 is never repeated behind the user\'s back', async () => {
    calls.length = 0;
    answers = [[429, { 'Retry-After': '1' }]];
    const answer = await common.request('POST', '/api/login', { username: 'a', password: 'b' });
    assert.equal(answer.status, 429);
    assert.equal(answer.data.error, 'status 429');
    assert.equal(calls.length, 1);
  });

  it('a long Retry-After is left to the user', async () => {
    calls.length = 0;
    answers = [[429, { 'Retry-After': '60' }]];
    assert.equal((await common.request('GET', '/api/me')).status, 429);
    assert.equal(calls.length, 1);
  });
});
