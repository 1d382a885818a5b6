// @ts-check
// The console's encoded-transform Worker: seals every frame the browser sends and opens every
// frame it receives with the visit's keys (e2ee.js), so the media is end-to-end encrypted
// whatever carries it. It takes streams two ways: `createEncodedStreams()` pairs posted by the
// page (Chromium), and `rtctransform` events (RTCRtpScriptTransform: Firefox, Safari).
//
// Until the page posts the keys every frame is dropped, both ways: nothing leaves in the clear.
// A frame that fails authentication is dropped and counted (the page reads the counts), and the
// sender is asked for a keyframe at most once a second where the API allows it. Never logs keys.

import { Receiver, Sender } from './e2ee.js';

/** @typedef {'send' | 'receive'} Direction */
/** @typedef {'audio' | 'video'} Kind */

/** @type {{ sender: Sender, receiveKey: Uint8Array, receiveKid: bigint, epoch: number } | null} */
let keys = null;
const counts = { sealed: 0, opened: 0, authFailures: 0, droppedWithoutKeys: 0 };

/** The video codec the answer chose (both directions use it); the page says which. */
let videoCodec = /** @type {'h264' | 'vp8'} */ ('h264');

/** @param {Kind} kind */
const codecOf = (kind) => (kind === 'audio' ? 'opus' : videoCodec);

/**
 * The transform for one track's frames.
 * @param {Direction} dir
 * @param {Kind} kind
 * @param {() => void} [askKeyframe]
 */
function transform(dir, kind, askKeyframe) {
  /** @type {{ epoch: number, receiver: Receiver } | null} */
  let opener = null;
  let lastAsk = 0;
  return new TransformStream({
    /**
     * @param {RTCEncodedVideoFrame | RTCEncodedAudioFrame} frame
     * @param {TransformStreamDefaultController} out
     */
    async transform(frame, out) {
      const k = keys;
      if (!k) {
        counts.droppedWithoutKeys++;
        return;
      }
      const data = new Uint8Array(frame.data);
      const codec = codecOf(kind);
      if (dir === 'send') {
        try {
          frame.data = (await k.sender.protect(codec, data)).buffer;
          counts.sealed++;
          out.enqueue(frame);
        } catch {
          // Not sealed, not sent.
        }
        return;
      }
      if (!opener || opener.epoch !== k.epoch) {
        const receiver = new Receiver();
        await receiver.setKey(k.receiveKey, k.receiveKid);
        opener = { epoch: k.epoch, receiver };
      }
      try {
        frame.data = (await opener.receiver.unprotect(codec, data)).buffer;
        counts.opened++;
        out.enqueue(frame);
      } catch {
        counts.authFailures++;
        if (askKeyframe && kind === 'video' && Date.now() - lastAsk > 1000) {
          lastAsk = Date.now();
          askKeyframe();
        }
      }
    },
  });
}

/**
 * Pipes one track's encoded frames through its transform.
 * @param {ReadableStream} readable
 * @param {WritableStream} writable
 * @param {Direction} dir
 * @param {Kind} kind
 * @param {() => void} [askKeyframe]
 */
function pipe(readable, writable, dir, kind, askKeyframe) {
  readable.pipeThrough(transform(dir, kind, askKeyframe)).pipeTo(writable).catch(() => {});
}

self.onmessage = async (/** @type {MessageEvent} */ e) => {
  const msg = e.data;
  if (msg.op === 'stream') {
    pipe(msg.readable, msg.writable, msg.dir, msg.kind);
  } else if (msg.op === 'video-codec') {
    videoCodec = msg.codec;
  } else if (msg.op === 'keys') {
    const sender = await Sender.create(msg.sendKey, BigInt(msg.sendKid));
    keys = { sender, receiveKey: msg.receiveKey, receiveKid: BigInt(msg.receiveKid), epoch: (keys?.epoch ?? 0) + 1 };
  } else if (msg.op === 'counts') {
    self.postMessage({ op: 'counts', counts: { ...counts } });
  }
};

// RTCRtpScriptTransform (Firefox, Safari): the options say which direction and kind.
if ('RTCTransformEvent' in self) {
  self.addEventListener('rtctransform', (/** @type {any} */ event) => {
    const t = event.transformer;
    const { dir, kind } = t.options;
    const ask = () => { t.sendKeyFrameRequest?.().catch(() => {}); };
    pipe(t.readable, t.writable, dir, kind, dir === 'receive' ? ask : undefined);
  });
}
