// @ts-check
// The console's side of a visit's end-to-end encryption, on the page: which browser API can
// carry it, the check of the kiosk's signed key against the device key fleetd enrolled, the key
// agreement for one answer, and the Worker (e2ee-worker.js) every track's frames go through.
//
// Owns one peer connection's keys and Worker. Must never let a track bypass the Worker, never
// answer an offer whose signature does not check, and never keep keys past the call.

import {
  CONSOLE_KID, KIOSK_KID, deriveVisitKeys, exportPublic, generateEphemeral, kioskKeyTranscript, sharedSecret,
} from './e2ee-schedule.js';

/** @typedef {import('./wire.js').KioskKey} KioskKey */
/** @typedef {import('./wire.js').ConsoleKey} ConsoleKey */
/** @typedef {import('./wire.js').SecurityCheck} SecurityCheck */

/** What a browser without encoded transforms is told; it cannot join (never a silent downgrade). */
export const UNSUPPORTED_WORDS = 'This browser cannot encrypt video visits end to end, so it cannot join one. '
  + 'Please use a current Chrome, Edge, Firefox or Safari.';

/** Which encoded-transform API this browser has, or null. @returns {'streams' | 'script' | null} */
export function transformApi() {
  if (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
  if (typeof RTCRtpScriptTransform !== 'undefined') return 'script';
  return null;
}

/** Why this browser cannot take part in a visit, in plain words, or '' when it can. */
export function whyNot() {
  return transformApi() ? '' : UNSUPPORTED_WORDS;
}

/** The first `a=fingerprint:` value of an SDP, as the kiosk reads it. @param {string} sdp */
export function dtlsFingerprint(sdp) {
  const m = /^a=fingerprint:(.+)$/m.exec(sdp);
  return m ? m[1].trim() : null;
}

/**
 * The video codec an answer chose (its video m-line's first payload type), as the Worker names it.
 * @param {string} sdp
 * @returns {'h264' | 'vp8'}
 */
export function videoCodecOf(sdp) {
  const mline = /^m=video \d+ [A-Z/]+ (\d+)/m.exec(sdp);
  if (!mline) return 'h264';
  const rtpmap = new RegExp(`^a=rtpmap:${mline[1]} ([A-Za-z0-9]+)/`, 'm').exec(sdp);
  return rtpmap && rtpmap[1].toUpperCase() === 'VP8' ? 'vp8' : 'h264';
}

/** @param {Uint8Array} bytes */
function b64(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {string} text */
function unb64(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A failed check: the visit is refused and `check` goes to fleetd (audited). */
export class SecurityError extends Error {
  /** @param {SecurityCheck} check @param {string} message */
  constructor(check, message) {
    super(message);
    this.check = check;
  }
}

/**
 * Checks that the kiosk's ephemeral key and the offer's DTLS fingerprint were signed by the
 * kiosk's enrolled device key; returns the key and fingerprint to agree with.
 * @param {string} visitId
 * @param {string} sdp  the offer
 * @param {KioskKey} key
 * @param {string} deviceKey  SEC1, base64url, from fleetd's registry
 */
export async function checkKiosk(visitId, sdp, key, deviceKey) {
  if (!deviceKey) throw new SecurityError('unknown_device', 'the server does not know this kiosk\'s key');
  const kioskFp = dtlsFingerprint(sdp);
  if (!kioskFp) throw new SecurityError('fingerprint', 'the kiosk\'s offer has no DTLS fingerprint');
  const kioskPublic = unb64(key.public_key);
  let ok = false;
  try {
    const device = await crypto.subtle.importKey(
      'raw', unb64(deviceKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, device, unb64(key.signature),
      kioskKeyTranscript(visitId, kioskPublic, kioskFp));
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new SecurityError('kiosk_signature',
      'the kiosk\'s encryption key or connection fingerprint was not signed by the kiosk itself');
  }
  return { kioskPublic, kioskFp };
}

/** One peer connection's encryption: its Worker and, once agreed, its keys. */
export class Session {
  constructor() {
    this.api = transformApi();
    this.worker = new Worker(new URL('./e2ee-worker.js', import.meta.url), { type: 'module' });
    /** @type {Awaited<ReturnType<typeof deriveVisitKeys>> | null} */
    this.keys = null;
  }

  /** Options for `new RTCPeerConnection` that this API needs. */
  peerOptions() {
    return this.api === 'streams' ? { encodedInsertableStreams: true } : {};
  }

  /**
   * Sends (`dir` 'send') or receives one track's frames through the Worker.
   * @param {RTCRtpSender | RTCRtpReceiver} endpoint
   * @param {'send' | 'receive'} dir
   * @param {string} kind
   */
  attach(endpoint, dir, kind) {
    if (this.api === 'streams') {
      const { readable, writable } = /** @type {any} */ (endpoint).createEncodedStreams();
      this.worker.postMessage({ op: 'stream', readable, writable, dir, kind }, [readable, writable]);
    } else {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, { dir, kind });
    }
  }

  /**
   * Agrees on the frame keys for this answer and hands them to the Worker; returns the console's
   * half for the answer message and the verification code.
   * @param {string} visitId
   * @param {{ kioskPublic: Uint8Array, kioskFp: string }} kiosk
   * @param {string} answerSdp
   * @returns {Promise<{ half: ConsoleKey, code: string }>}
   */
  async agree(visitId, kiosk, answerSdp) {
    const consoleFp = dtlsFingerprint(answerSdp);
    if (!consoleFp) throw new SecurityError('fingerprint', 'this browser\'s answer has no DTLS fingerprint');
    const mine = await generateEphemeral();
    const shared = await sharedSecret(mine.privateKey, kiosk.kioskPublic);
    const keys = await deriveVisitKeys(shared, visitId, kiosk.kioskFp, consoleFp);
    this.keys = keys;
    this.worker.postMessage({ op: 'video-codec', codec: videoCodecOf(answerSdp) });
    this.worker.postMessage({
      op: 'keys', sendKey: keys.consoleToKiosk, sendKid: Number(CONSOLE_KID),
      receiveKey: keys.kioskToConsole, receiveKid: Number(KIOSK_KID),
    });
    const half = { public_key: b64(await exportPublic(mine.publicKey)), confirm: b64(keys.consoleConfirm) };
    return { half, code: keys.code };
  }

  /** Whether the kiosk's confirmation matches the keys agreed here. @param {string} confirm */
  confirms(confirm) {
    return this.keys !== null && b64(this.keys.kioskConfirm) === confirm;
  }

  /** The Worker's counts (sealed, opened, authFailures, droppedWithoutKeys). */
  counts() {
    return new Promise((resolve) => {
      const onCounts = (/** @type {MessageEvent} */ e) => {
        if (e.data && e.data.op === 'counts') {
          this.worker.removeEventListener('message', onCounts);
          resolve(e.data.counts);
        }
      };
      this.worker.addEventListener('message', onCounts);
      this.worker.postMessage({ op: 'counts' });
    });
  }

  close() {
    this.worker.terminate();
    this.keys = null;
  }
}
