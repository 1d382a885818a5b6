// @ts-check
// The per-visit key schedule, twin of src/e2ee/src/schedule.rs: an ECDH P-256 between the
// console's and the kiosk's ephemeral keys, then HKDF-SHA512 with the salt "telekiosk e2ee v1"
// and, as info, the visit id, the kiosk's and the console's DTLS fingerprints and a purpose, each
// prefixed by its length (2 bytes, big-endian): each direction's 32-byte SFrame base key, and a
// verification code of five groups of five digits both screens show.
//
// Owns only the derivation; runs on the console's main thread and hands the base keys to the
// Worker. It must never sign or verify identities (the kiosk's TPM-signed ephemeral key and the
// clinician's enrolled key are checked elsewhere) and never keep keys past a visit.

import { be, concat, hkdf, text } from './e2ee.js';

/** HKDF salt of the per-visit schedule. */
export const SCHEDULE_LABEL = 'telekiosk e2ee v1';
/** The KID each side's sender uses. */
export const KIOSK_KID = 1n;
export const CONSOLE_KID = 2n;

/** A fresh ephemeral ECDH P-256 key pair (private key not extractable). */
export function generateEphemeral() {
  return crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
}

/** @param {CryptoKey} publicKey  SEC1 uncompressed (65 bytes), as the kiosk sends its own */
export async function exportPublic(publicKey) {
  return new Uint8Array(await crypto.subtle.exportKey('raw', publicKey));
}

/**
 * The ECDH shared secret (x coordinate, 32 bytes) with the peer's SEC1 public key.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} peerPublic
 */
export async function sharedSecret(privateKey, peerPublic) {
  const peer = await crypto.subtle.importKey(
    'raw', peerPublic, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: peer }, privateKey, 256));
}

/**
 * len(field) || field for each, lengths 2 bytes big-endian.
 * @param {string} visitId @param {string} kioskFp @param {string} consoleFp @param {string} purpose
 */
export function scheduleInfo(visitId, kioskFp, consoleFp, purpose) {
  return concat(...[visitId, kioskFp, consoleFp, purpose].flatMap((s) => {
    const b = text.encode(s);
    return [be(BigInt(b.length), 2), b];
  }));
}

/**
 * Both senders' base keys and the verification code (as src/e2ee/src/schedule.rs).
 * @param {Uint8Array} shared
 * @param {string} visitId
 * @param {string} kioskFp  the SDP's a=fingerprint value, exactly
 * @param {string} consoleFp
 */
export async function deriveVisitKeys(shared, visitId, kioskFp, consoleFp) {
  const salt = text.encode(SCHEDULE_LABEL);
  /** @param {string} purpose @param {number} len */
  const expand = (purpose, len) => hkdf(shared, salt, scheduleInfo(visitId, kioskFp, consoleFp, purpose), len);
  const kioskToConsole = await expand('kiosk->console', 32);
  const consoleToKiosk = await expand('console->kiosk', 32);
  const kioskConfirm = await expand('kiosk confirms', 16);
  const consoleConfirm = await expand('console confirms', 16);
  const bytes = await expand('verification code', 25);
  const groups = [];
  for (let i = 0; i < 25; i += 5) {
    let v = 0;
    for (const b of bytes.subarray(i, i + 5)) v = v * 256 + b;
    groups.push(String(v % 100000).padStart(5, '0'));
  }
  return { kioskToConsole, consoleToKiosk, kioskConfirm, consoleConfirm, code: groups.join(' ') };
}

/**
 * What the kiosk signs with its TPM device key (as schedule::kiosk_key_transcript): the label,
 * the visit id, its ephemeral public key and the offer's DTLS fingerprint, length-prefixed.
 * @param {string} visitId @param {Uint8Array} kioskPublic @param {string} kioskFp
 */
export function kioskKeyTranscript(visitId, kioskPublic, kioskFp) {
  return concat(...[text.encode('telekiosk e2ee v1 kiosk key'), text.encode(visitId), kioskPublic, text.encode(kioskFp)]
    .flatMap((b) => [be(BigInt(b.length), 2), b]));
}
