// @ts-check
// The consoles' twin of the kiosk's frame protection (src/e2ee, SFrame after RFC 9605 with
// AES_256_GCM_SHA512_128): the header, per-KID keys, sealing and opening a frame, the clear
// prefix per codec, and the Sender and Receiver the encoded-transform Worker runs. The per-visit
// key schedule is in e2ee-schedule.js (main thread). tests/e2e/e2ee_vectors.test.mjs holds both
// to the RFC's vectors and to src/e2ee/tests/fixtures.json, which the Rust crate also asserts.
//
// Owns only pure crypto over bytes: no DOM, no network, no timers, so it runs in a Worker (the
// encoded-transform side) and in node. It must never reuse a counter under a key, never return
// plaintext that failed authentication, and never implement a primitive: WebCrypto does
// AES-GCM, HKDF, SHA-512 and ECDH. KID and CTR are BigInts (they are 64-bit on the wire).

/** RFC 9605's registry value for AES_256_GCM_SHA512_128. */
export const CIPHER_SUITE = 0x0005;
const TAG_LEN = 16;
const NONCE_LEN = 12;
const MAX_U64 = (1n << 64n) - 1n;
/** How many counters behind the highest seen a late frame may still arrive. */
export const REPLAY_WINDOW = 128n;

export const text = new TextEncoder();

/** @typedef {'opus' | 'vp8' | 'h264'} Codec */
/** @typedef {{ kid: bigint, key: CryptoKey, keyBytes: Uint8Array, salt: Uint8Array }} FrameKey */

/**
 * Concatenates byte arrays.
 * @param {Uint8Array[]} parts
 * @returns {Uint8Array}
 */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * `v` as `len` big-endian bytes.
 * @param {bigint} v
 * @param {number} len
 */
export function be(v, len) {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** @param {bigint} v  minimal big-endian length, at least 1 */
function minLen(v) {
  let len = 1;
  while (v >> BigInt(8 * len) > 0n) len++;
  return len;
}

/**
 * The SFrame header: config byte X K(3) Y C(3), then KID and CTR, minimal big-endian; a value
 * below 8 lives in the config byte.
 * @param {bigint} kid
 * @param {bigint} ctr
 * @returns {Uint8Array}
 */
export function encodeHeader(kid, ctr) {
  let config = 0;
  /** @type {Uint8Array[]} */
  const fields = [];
  if (kid < 8n) config |= Number(kid) << 4;
  else {
    const len = minLen(kid);
    config |= 0x80 | ((len - 1) << 4);
    fields.push(be(kid, len));
  }
  if (ctr < 8n) config |= Number(ctr);
  else {
    const len = minLen(ctr);
    config |= 0x08 | (len - 1);
    fields.push(be(ctr, len));
  }
  return concat(Uint8Array.of(config), ...fields);
}

/**
 * Parses the header at the start of `bytes`.
 * @param {Uint8Array} bytes
 * @returns {{ kid: bigint, ctr: bigint, length: number }}
 */
export function decodeHeader(bytes) {
  if (bytes.length < 1) throw new Error('malformed header');
  const config = bytes[0];
  let at = 1;
  /** @param {boolean} extended @param {number} bits */
  const field = (extended, bits) => {
    if (!extended) return BigInt(bits);
    const len = bits + 1;
    if (at + len > bytes.length) throw new Error('malformed header');
    let v = 0n;
    for (const b of bytes.subarray(at, at + len)) v = (v << 8n) | BigInt(b);
    at += len;
    return v;
  };
  const kid = field((config & 0x80) !== 0, (config >> 4) & 0x07);
  const ctr = field((config & 0x08) !== 0, config & 0x07);
  return { kid, ctr, length: at };
}

/**
 * Leading bytes left clear per codec (as src/e2ee/src/codec.rs): Opus TOC 1; VP8 the frame tag
 * (3) and on a keyframe the start code and size (7), then up to 16 bytes of the first partition
 * (the frame header GStreamer's payloader decodes); H.264 is protected per slice NAL, whose
 * header and next 4 bytes stay clear (5).
 * @param {Codec} codec
 * @param {Uint8Array} frame
 */
export function clearPrefixLen(codec, frame) {
  if (codec === 'opus') return 1;
  if (codec === 'vp8') {
    if (frame.length < 3) return 3;
    const firstPartition = (frame[2] << 11) | (frame[1] << 3) | (frame[0] >> 5);
    return ((frame[0] & 1) === 0 ? 10 : 3) + Math.min(firstPartition, VP8_CLEAR_HEADER);
  }
  return 5;
}

/** How many bytes of a VP8 frame's first partition (its frame header) stay clear. */
export const VP8_CLEAR_HEADER = 16;

/** Appended to every protected H.264 slice, so none ends in a zero byte. */
const H264_TRAILER = 0x80;

/**
 * The NAL units of an Annex B access unit, as src/e2ee/src/h264.rs finds them: where each start
 * code begins, where the NAL header is, where the unit ends.
 * @param {Uint8Array} au
 */
function nalUnits(au) {
  /** @type {[number, number][]} */
  const starts = [];
  for (let i = 0; i + 3 <= au.length;) {
    if (au[i] === 0 && au[i + 1] === 0 && au[i + 2] === 1) {
      starts.push([i > 0 && au[i - 1] === 0 ? i - 1 : i, i + 3]);
      i += 3;
    } else {
      i += 1;
    }
  }
  return starts.map(([start, body], n) => ({ start, body, end: n + 1 < starts.length ? starts[n + 1][0] : au.length }));
}

/** @param {Uint8Array} bytes  how many zero bytes end it (at most 2) */
function trailingZeros(bytes) {
  let n = 0;
  for (let i = bytes.length - 1; i >= 0 && n < 2 && bytes[i] === 0; i--) n++;
  return n;
}

/**
 * H.264 emulation prevention over `data`, after `zeros` zero bytes already written.
 * @param {number} zeros @param {Uint8Array} data @param {number[]} out
 */
export function escape(zeros, data, out) {
  for (const b of data) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
}

/** The inverse of `escape`. @param {number} zeros @param {Uint8Array} data @param {number[]} out */
export function unescape(zeros, data, out) {
  for (const b of data) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
}

/** @param {number} nalHeader */
const isSlice = (nalHeader) => (nalHeader & 0x1f) >= 1 && (nalHeader & 0x1f) <= 5;

/**
 * A new access unit from `au`, each slice NAL's body replaced by what `slice` writes (its clear
 * bytes are the first `clear`), as map_slices in h264.rs; throws `none()` if `au` has no NAL unit.
 * @param {Uint8Array} au
 * @param {(body: Uint8Array, clear: number, out: number[]) => Promise<void>} slice
 * @param {() => Error} none
 */
async function mapSlices(au, slice, none) {
  const nals = nalUnits(au);
  if (!nals.length) throw none();
  /** @type {number[]} */
  const out = [...au.subarray(0, nals[0].start)];
  for (const nal of nals) {
    const body = au.subarray(nal.body, nal.end);
    for (const b of au.subarray(nal.start, nal.body)) out.push(b);
    if (body.length && isSlice(body[0])) await slice(body, Math.min(body.length, 5), out);
    else for (const b of body) out.push(b);
  }
  return Uint8Array.from(out);
}

/**
 * HKDF-SHA512 (extract and expand) of `ikm`.
 * @param {Uint8Array} ikm
 * @param {Uint8Array} salt
 * @param {Uint8Array} info
 * @param {number} length  bytes
 */
export async function hkdf(ikm, salt, info, length) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-512', salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

/**
 * RFC 9605 derive_key_salt for AES_256_GCM_SHA512_128.
 * @param {Uint8Array} baseKey
 * @param {bigint} kid
 * @returns {Promise<FrameKey>}
 */
export async function deriveFrameKey(baseKey, kid) {
  if (baseKey.length === 0) throw new Error('empty base key');
  const suffix = concat(be(kid, 8), be(BigInt(CIPHER_SUITE), 2));
  const none = new Uint8Array(0);
  const keyBytes = await hkdf(baseKey, none, concat(text.encode('SFrame 1.0 Secret key '), suffix), 32);
  const salt = await hkdf(baseKey, none, concat(text.encode('SFrame 1.0 Secret salt '), suffix), NONCE_LEN);
  const key = await crypto.subtle.importKey('raw', keyBytes, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { kid, key, keyBytes, salt };
}

/**
 * The nonce for `ctr`: the salt XOR the counter, right-aligned.
 * @param {Uint8Array} salt
 * @param {bigint} ctr
 */
export function nonce(salt, ctr) {
  const out = Uint8Array.from(salt);
  const c = be(ctr, 8);
  for (let i = 0; i < 8; i++) out[NONCE_LEN - 8 + i] ^= c[i];
  return out;
}

/**
 * RFC 9605 encrypt: header || ciphertext || tag, with AAD = header || metadata.
 * @param {FrameKey} fk
 * @param {bigint} ctr
 * @param {Uint8Array} metadata
 * @param {Uint8Array} plaintext
 */
export async function seal(fk, ctr, metadata, plaintext) {
  const header = encodeHeader(fk.kid, ctr);
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce(fk.salt, ctr), additionalData: concat(header, metadata), tagLength: 128 },
    fk.key, plaintext);
  return concat(header, new Uint8Array(sealed));
}

/**
 * RFC 9605 decrypt for a parsed header; throws on a frame that fails authentication.
 * @param {FrameKey} fk
 * @param {Uint8Array} header
 * @param {bigint} ctr
 * @param {Uint8Array} metadata
 * @param {Uint8Array} body  ciphertext || tag
 */
export async function open(fk, header, ctr, metadata, body) {
  if (body.length < TAG_LEN) throw new Error('too short');
  try {
    const pt = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: nonce(fk.salt, ctr), additionalData: concat(header, metadata), tagLength: 128 },
      fk.key, body);
    return new Uint8Array(pt);
  } catch {
    throw new Error('authentication');
  }
}

/** One sender's key and counter; protects frames as `clear prefix || SFrame`. */
export class Sender {
  /** @param {FrameKey} fk */
  constructor(fk) {
    this.fk = fk;
    /** @type {bigint | null} */
    this.next = 0n;
  }

  /** @param {Uint8Array} baseKey @param {bigint} kid */
  static async create(baseKey, kid) {
    return new Sender(await deriveFrameKey(baseKey, kid));
  }

  /**
   * @param {Codec} codec
   * @param {Uint8Array} frame  for H.264 an Annex B access unit, protected slice by slice
   */
  async protect(codec, frame) {
    if (codec !== 'h264') return this.protectWithPrefix(clearPrefixLen(codec, frame), frame);
    return mapSlices(frame, async (body, clear, out) => {
      const sealed = await this.protectWithPrefix(clear, body);
      for (const b of body.subarray(0, clear)) out.push(b);
      escape(trailingZeros(body.subarray(0, clear)), sealed.subarray(clear), out);
      out.push(H264_TRAILER);
    }, () => new Error('not Annex B: nothing to seal'));
  }

  /**
   * Protects `frame` leaving its first `clear` bytes readable.
   * @param {number} clear
   * @param {Uint8Array} frame
   */
  async protectWithPrefix(clear, frame) {
    if (frame.length < clear) throw new Error('too short');
    if (this.next === null) throw new Error('counter exhausted; rekey');
    const ctr = this.next;
    this.next = ctr === MAX_U64 ? null : ctr + 1n;
    const prefix = frame.subarray(0, clear);
    return concat(prefix, await seal(this.fk, ctr, prefix, frame.subarray(clear)));
  }
}

/** The peers' keys by KID with a replay window each; drops and counts bad frames. */
export class Receiver {
  constructor() {
    /** @type {Map<bigint, { fk: FrameKey, highest: bigint | null, seen: bigint }>} */
    this.keys = new Map();
    this.stats = { opened: 0, authFailures: 0, replays: 0, unknownKid: 0, malformed: 0 };
  }

  /** @param {Uint8Array} baseKey @param {bigint} kid */
  async setKey(baseKey, kid) {
    this.keys.set(kid, { fk: await deriveFrameKey(baseKey, kid), highest: null, seen: 0n });
  }

  /**
   * Opens a protected frame or throws (the frame is then dropped and counted). For H.264 every
   * slice of the access unit must open.
   * @param {Codec} codec
   * @param {Uint8Array} frame
   */
  async unprotect(codec, frame) {
    if (codec !== 'h264') return this.unprotectWithPrefix(clearPrefixLen(codec, frame), frame);
    const malformed = () => {
      this.stats.malformed++;
      return new Error('a slice that is not protected');
    };
    return mapSlices(frame, async (body, clear, out) => {
      if (body.length <= clear || body[body.length - 1] !== H264_TRAILER) throw malformed();
      /** @type {number[]} */
      const sealed = [...body.subarray(0, clear)];
      unescape(trailingZeros(body.subarray(0, clear)), body.subarray(clear, body.length - 1), sealed);
      for (const b of await this.unprotectWithPrefix(clear, Uint8Array.from(sealed))) out.push(b);
    }, malformed);
  }

  /**
   * Opens `frame` whose first `clear` bytes were left readable, or throws.
   * @param {number} clear
   * @param {Uint8Array} frame
   */
  async unprotectWithPrefix(clear, frame) {
    if (frame.length < clear) {
      this.stats.malformed++;
      throw new Error('too short');
    }
    const prefix = frame.subarray(0, clear);
    const sframe = frame.subarray(clear);
    let header;
    try {
      header = decodeHeader(sframe);
    } catch (e) {
      this.stats.malformed++;
      throw e;
    }
    const entry = this.keys.get(header.kid);
    if (!entry) {
      this.stats.unknownKid++;
      throw new Error(`no key for KID ${header.kid}`);
    }
    const { ctr } = header;
    const h = entry.highest;
    if (h !== null && ctr <= h && (h - ctr >= REPLAY_WINDOW || (entry.seen >> (h - ctr)) & 1n)) {
      this.stats.replays++;
      throw new Error(`replay of counter ${ctr}`);
    }
    const body = sframe.subarray(header.length);
    if (body.length < TAG_LEN) {
      this.stats.malformed++;
      throw new Error('too short');
    }
    let pt;
    try {
      pt = await open(entry.fk, sframe.subarray(0, header.length), ctr, prefix, body);
    } catch (e) {
      this.stats.authFailures++;
      throw e;
    }
    const mask = (1n << REPLAY_WINDOW) - 1n;
    if (h === null) {
      entry.highest = ctr;
      entry.seen = 1n;
    } else if (ctr <= h) {
      entry.seen |= 1n << (h - ctr);
    } else {
      entry.seen = ((entry.seen << (ctr - h)) | 1n) & mask;
      entry.highest = ctr;
    }
    this.stats.opened++;
    return concat(prefix, pt);
  }
}
