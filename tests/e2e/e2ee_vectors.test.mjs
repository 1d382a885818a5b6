// The consoles' frame protection (assets/e2ee.js, assets/e2ee-schedule.js) in Node: RFC 9605's vectors for
// AES_256_GCM_SHA512_128, and src/e2ee/tests/fixtures.json, which the Rust crate (src/e2ee)
// printed and asserts too, so both sides agree byte for byte. No browser is needed.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ROOT } from './harness.mjs';

/** @type {typeof import('../../src/fleetd/src/http/assets/e2ee.js')} */
let e2ee;
/** @type {typeof import('../../src/fleetd/src/http/assets/e2ee-schedule.js')} */
let schedule;
/** The directory holding the copies, for the Worker. */
let dir = '';
const fixtures = JSON.parse(fs.readFileSync(path.join(ROOT, 'src/e2ee/tests/fixtures.json'), 'utf8'));
const hex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');
const bytes = (/** @type {string} */ s) => new Uint8Array(Buffer.from(s, 'hex'));

before(async () => {
  // The assets are ES modules served as .js (one imports the other by that name): copies in a
  // directory whose package.json says "module" are read as such by Node.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-e2ee-'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
  for (const name of ['e2ee.js', 'e2ee-schedule.js']) {
    fs.copyFileSync(path.join(ROOT, 'src/fleetd/src/http/assets', name), path.join(dir, name));
  }
  e2ee = await import(path.join(dir, 'e2ee.js'));
  schedule = await import(path.join(dir, 'e2ee-schedule.js'));
});

/** Imports a P-256 private scalar with its SEC1 public key for ECDH. */
function importPrivate(/** @type {string} */ d, /** @type {string} */ pub) {
  const p = bytes(pub);
  const b64 = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('base64url');
  return crypto.subtle.importKey('jwk',
    { kty: 'EC', crv: 'P-256', d: b64(bytes(d)), x: b64(p.subarray(1, 33)), y: b64(p.subarray(33, 65)) },
    { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
}

describe('RFC 9605 vectors', () => {
  it('encodes and decodes the appendix C.1 headers', () => {
    for (const [kid, ctr, wire] of [
      [0x123n, 0x4567n, '9901234567'],
      [0x0100000000000000n, 0n, 'f00100000000000000'],
      [0x0100000000000000n, 0xffn, 'f80100000000000000ff'],
      [0x0100000000000000n, 0x100n, 'f901000000000000000100'],
      [0x0100000000000000n, 0x0100000000000000n, 'ff01000000000000000100000000000000'],
      [0x00ffffffffffffffn, 0xffffffffffffffffn, 'efffffffffffffffffffffffffffffff'],
      [0xffffffffffffffffn, 0n, 'f0ffffffffffffffff'],
      [0xffffffffffffffffn, 0xffffffffffffffffn, 'ffffffffffffffffffffffffffffffffff'],
    ]) {
      assert.equal(hex(e2ee.encodeHeader(kid, ctr)), wire);
      assert.deepEqual(e2ee.decodeHeader(bytes(wire + '00')), { kid, ctr, length: wire.length / 2 });
    }
    assert.throws(() => e2ee.decodeHeader(bytes('9901')));
  });

  it('derives, seals and opens the appendix C.3 AES_256_GCM_SHA512_128 case', async () => {
    assert.equal(e2ee.CIPHER_SUITE, 5);
    const fk = await e2ee.deriveFrameKey(bytes('000102030405060708090a0b0c0d0e0f'), 0x123n);
    assert.equal(hex(fk.keyBytes), 'd3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633');
    assert.equal(hex(fk.salt), '84991c167b8cd23c93708ec7');
    assert.equal(hex(e2ee.nonce(fk.salt, 0x4567n)), '84991c167b8cd23c9370cba0');
    const metadata = bytes('4945544620534672616d65205747');
    const pt = bytes('64726166742d696574662d736672616d652d656e63');
    const ct = '990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279';
    assert.equal(hex(await e2ee.seal(fk, 0x4567n, metadata, pt)), ct);
    const c = bytes(ct);
    assert.equal(hex(await e2ee.open(fk, c.subarray(0, 5), 0x4567n, metadata, c.subarray(5))), hex(pt));
  });
});

describe('the Rust crate\'s fixtures', () => {
  it('headers and per-KID keys and ciphertexts match', async () => {
    assert.equal(fixtures.cipher_suite, e2ee.CIPHER_SUITE);
    for (const c of fixtures.headers) {
      assert.equal(hex(e2ee.encodeHeader(BigInt(c.kid), BigInt(c.ctr))), c.header);
    }
    const base = bytes(fixtures.base_key);
    for (const c of fixtures.frames) {
      const fk = await e2ee.deriveFrameKey(base, BigInt(c.kid));
      assert.equal(hex(fk.keyBytes), c.key);
      assert.equal(hex(fk.salt), c.salt);
      assert.equal(hex(await e2ee.seal(fk, BigInt(c.ctr), bytes(c.metadata), bytes(c.pt))), c.ct);
    }
  });

  it('protected media frames match both ways, with the codec\'s prefix clear', async () => {
    const base = bytes(fixtures.base_key);
    for (const c of fixtures.media) {
      const frame = bytes(c.frame);
      assert.equal(e2ee.clearPrefixLen(c.codec, frame), c.clear, c.codec);
      const sender = await e2ee.Sender.create(base, BigInt(c.kid));
      await sender.protect('opus', bytes('78'));
      assert.equal(hex(await sender.protect(c.codec, frame)), c.protected);
      const receiver = new e2ee.Receiver();
      await receiver.setKey(base, BigInt(c.kid));
      assert.equal(hex(await receiver.unprotect(c.codec, bytes(c.protected))), c.frame);
    }
  });

  it('the key schedule gives the same shared secret, keys and code', async () => {
    const s = fixtures.schedule;
    const consoleKey = await importPrivate(s.console_private, s.console_public);
    const shared = await schedule.sharedSecret(consoleKey, bytes(s.kiosk_public));
    assert.equal(hex(shared), s.shared);
    const keys = await schedule.deriveVisitKeys(shared, s.visit_id, s.kiosk_fingerprint, s.console_fingerprint);
    assert.equal(hex(keys.kioskToConsole), s.kiosk_to_console);
    assert.equal(hex(keys.consoleToKiosk), s.console_to_kiosk);
    assert.equal(keys.code, s.code);
    assert.equal(hex(keys.kioskConfirm), s.kiosk_confirm);
    assert.equal(hex(keys.consoleConfirm), s.console_confirm);
    assert.equal(hex(schedule.kioskKeyTranscript(s.visit_id, bytes(s.kiosk_public), s.kiosk_fingerprint)),
      s.kiosk_key_transcript);
    const swapped = await schedule.deriveVisitKeys(shared, s.visit_id, s.console_fingerprint, s.kiosk_fingerprint);
    assert.notEqual(hex(swapped.kioskToConsole), s.kiosk_to_console);
    assert.notEqual(swapped.code, s.code);
  });
});

describe('sender and receiver', () => {
  it('refuses tampered frames, replays and wrong keys, and counts them', async () => {
    const key = new Uint8Array(32).fill(7);
    const sender = await e2ee.Sender.create(key, 3n);
    const receiver = new e2ee.Receiver();
    await receiver.setKey(key, 3n);
    const frame = bytes('0000000165888400ffeeddcc');
    const one = await sender.protect('h264', frame);
    const two = await sender.protect('h264', frame);
    assert.notEqual(hex(one), hex(two), 'a new counter every frame');
    for (const at of [4, 6, one.length - 2]) {
      const bad = Uint8Array.from(one);
      bad[at] ^= 1;
      await assert.rejects(receiver.unprotect('h264', bad));
    }
    assert.equal(receiver.stats.authFailures, 3);
    assert.equal(hex(await receiver.unprotect('h264', two)), hex(frame));
    assert.equal(hex(await receiver.unprotect('h264', one)), hex(frame), 'a late frame once');
    await assert.rejects(receiver.unprotect('h264', one));
    assert.equal(receiver.stats.replays, 1);
    // A different key under the same KID, at a counter not seen yet: authentication fails.
    const stranger = await e2ee.Sender.create(new Uint8Array(32).fill(8), 3n);
    stranger.next = 2n;
    await assert.rejects(receiver.unprotect('h264', await stranger.protect('h264', frame)));
    assert.equal(receiver.stats.authFailures, 4);
    assert.equal(receiver.stats.opened, 2);
  });

  it('two fresh ephemeral pairs agree on keys and code', async () => {
    const a = await schedule.generateEphemeral();
    const b = await schedule.generateEphemeral();
    const sa = await schedule.sharedSecret(a.privateKey, await schedule.exportPublic(b.publicKey));
    const sb = await schedule.sharedSecret(b.privateKey, await schedule.exportPublic(a.publicKey));
    const ka = await schedule.deriveVisitKeys(sa, 'v', 'sha-256 AA', 'sha-256 BB');
    const kb = await schedule.deriveVisitKeys(sb, 'v', 'sha-256 AA', 'sha-256 BB');
    assert.equal(hex(ka.kioskToConsole), hex(kb.kioskToConsole));
    assert.match(ka.code, /^\d{5}( \d{5}){4}$/);
    assert.equal(ka.code, kb.code);
  });
});

describe('in a worker thread (no DOM, as the encoded-transform Worker)', () => {
  it('seals the RFC case there too', async () => {
    const source = `
      import { parentPort } from 'node:worker_threads';
      const e2ee = await import('./e2ee.js');
      const b = (s) => new Uint8Array(Buffer.from(s, 'hex'));
      const fk = await e2ee.deriveFrameKey(b('000102030405060708090a0b0c0d0e0f'), 0x123n);
      const ct = await e2ee.seal(fk, 0x4567n, b('4945544620534672616d65205747'),
        b('64726166742d696574662d736672616d652d656e63'));
      parentPort.postMessage(Buffer.from(ct).toString('hex'));`;
    const script = path.join(dir, 'worker.mjs');
    fs.writeFileSync(script, source);
    const worker = new Worker(script);
    const answer = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    assert.equal(answer,
      '990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279');
  });
});
