// @ts-check
// The clinician console's call: answers the kiosk's WebRTC offer, shows both pictures, says how
// the link is, and ends the call. The console (app.js) feeds it the visit's messages and says
// how to reach fleetd and what to do once a call is over.

import { $, roomLabel } from './common.js';
import { SecurityError, Session, checkKiosk } from './call-e2ee.js';

/** @typedef {import('./wire.js').Ice} Ice */
/** @typedef {import('./wire.js').IceSettings} IceSettings */
/** @typedef {import('./wire.js').EndReason} EndReason */
/** @typedef {import('./wire.js').ConsoleToServer} ConsoleToServer */
/** @typedef {import('./wire.js').ServerToConsole} ServerToConsole */
/** @typedef {Extract<ServerToConsole, { type: 'joined' }>} Joined */
/** @typedef {Extract<ServerToConsole, { type: 'offer' }>} Offer */

/**
 * The visit this console joined.
 * @typedef {object} Call
 * @property {string} visitId
 * @property {string} clinic
 * @property {string} room
 * @property {IceSettings} ice
 * @property {boolean} [audioOnly] this browser rejected the kiosk's video
 */

/**
 * What the call needs from the console.
 * @typedef {object} Hooks
 * @property {(msg: ConsoleToServer) => void} send to fleetd over /ws
 * @property {(text: string) => void} notice a passing notice above the waiting list
 * @property {() => void} over the call is over (back to the list, when still signed in)
 */

/** @type {Record<EndReason, string>} */
const END_WORDS = {
  patient_ended: 'the patient ended the visit',
  patient_cancelled: 'the patient cancelled',
  clinician_ended: 'you ended the visit',
  no_clinician: 'no clinician joined in time',
  connection_lost: 'the connection to the kiosk was lost',
  clinician_left: 'your connection to the server was lost',
  protocol_error: 'a technical problem ended the visit',
  kiosk_fault: 'the kiosk had a technical problem',
  time_limit: 'the visit reached the clinic\'s time limit',
  security_check_failed: 'its end-to-end encryption could not be confirmed, so no picture or sound was shown',
};

const AUDIO_ONLY_WORDS = 'Video could not start with this browser; audio only. You can still talk.';
const PAUSED_WORDS = 'Video paused: weak connection. You can still talk; the picture comes back by itself.';
const RECONNECTING_WORDS = 'Reconnecting… Nothing is arriving from the kiosk. Stay on: the call comes back by itself.';
const LINK_WORDS = { good: 'Good connection', fair: 'Fair connection', poor: 'Weak connection' };

/** @type {Hooks} */
let hooks = { send() {}, notice() {}, over() {} };
/** @type {Call | null} */
let call = null;
/** @type {RTCPeerConnection | null} */
let pc = null;
/** @type {Session | null} the peer connection's end-to-end encryption */
let e2ee = null;
/** @type {MediaStream | null} */
let localStream = null;
/** @type {Promise<MediaStream | null> | null} started on `joined` */
let localMedia = null;
/** @type {Ice[]} */
let pendingIce = [];
/** @type {ReturnType<typeof setInterval> | null} */
let linkTimer = null;

const video = (/** @type {string} */ id) => /** @type {HTMLVideoElement} */ ($(id));

/** The visit this console is in, or null. */
export const current = () => call;

/** The live peer connection, or null (for tests and support). */
export const peer = () => pc;

/** The call's end-to-end encryption counts (sealed, opened, authFailures), for tests and support. */
export const protection = () => (e2ee ? e2ee.counts() : Promise.resolve(null));

/**
 * Wires the call's buttons; `h` says how to reach the rest of the console.
 * @param {Hooks} h
 */
export function setUp(h) {
  hooks = h;
  $('mute').addEventListener('click', () => toggleTrack('audio', 'mute', 'Mute', 'Unmute'));
  $('camera').addEventListener('click', () => toggleTrack('video', 'camera', 'Camera off', 'Camera on'));
  $('end').addEventListener('click', () => {
    if (!call) return;
    hooks.send({ type: 'end', visit_id: call.visitId });
    endCall('clinician_ended');
  });
}

/**
 * fleetd gave this console the visit: the kiosk's offer follows.
 * @param {Joined} msg
 */
export function beginCall(msg) {
  call = { visitId: msg.visit_id, clinic: msg.clinic, room: msg.room, ice: msg.ice || {} };
  $('call-place').textContent = [msg.clinic, roomLabel(msg.room)].filter(Boolean).join(' · ');
  $('call-status').textContent = 'Connecting…';
  setToggle('mute', false, 'Mute');
  setToggle('camera', false, 'Camera off');
  // Ask for the camera now so the self view is up by the time the kiosk's offer arrives.
  localMedia = navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then((stream) => {
    localStream = stream;
    video('self').srcObject = stream;
    return stream;
  }, () => null);
}

/**
 * Answers the kiosk's offer; a failed security check refuses the visit, any other failure
 * ends the call.
 * @param {Offer} offer
 */
export function onOffer(offer) {
  answer(offer).catch((e) => (e instanceof SecurityError ? refuse(e) : callFailed(e)));
}

/**
 * The kiosk's key confirmation: the visit goes on only if both sides hold the same keys.
 * @param {string} confirm
 */
export function onKeyConfirm(confirm) {
  if (!call || !e2ee) return;
  if (!e2ee.confirms(confirm)) {
    refuse(new SecurityError('key_confirmation', 'the kiosk and this browser hold different encryption keys'));
  }
}

/** @param {Offer} offer */
async function answer(offer) {
  if (!call) return;
  const visitId = call.visitId;
  const { sdp } = offer;
  if (pc) {
    // The kiosk rebuilt its side to reconnect and made a new offer: a new peer connection
    // (with new keys) replaces the old one (the camera and microphone stay on).
    pc.ontrack = null; pc.onicecandidate = null; pc.onconnectionstatechange = null;
    pc.close();
    pendingIce = [];
  }
  if (e2ee) e2ee.close();
  // The kiosk's key must be signed by the kiosk itself before anything else happens.
  const kiosk = await checkKiosk(visitId, sdp, offer.e2ee, offer.device_key);
  if (!call || call.visitId !== visitId) return;
  const session = new Session();
  e2ee = session;
  // STUN/TURN servers from fleetd, with TURN credentials minted for this visit; relay only
  // where the clinic's firewall allows nothing else.
  const ice = call.ice || {};
  const conn = new RTCPeerConnection(/** @type {RTCConfiguration} */ ({
    iceServers: (ice.servers || []).map(({ urls, username, credential }) => ({ urls, username, credential })),
    iceTransportPolicy: ice.relay_only ? 'relay' : 'all',
    ...session.peerOptions(),
  }));
  pc = conn;
  const remote = new MediaStream();
  video('remote').srcObject = remote;
  // The kiosk's offer carries no a=msid, so tracks come without streams: collect them here.
  // Every received frame is opened by the Worker before the decoder sees it.
  conn.ontrack = (e) => {
    session.attach(e.receiver, 'receive', e.track.kind);
    remote.addTrack(e.track);
  };
  conn.onicecandidate = (e) => {
    const c = e.candidate;
    if (!c || !c.candidate) return;
    hooks.send({ type: 'ice', visit_id: visitId, ice: { mline: c.sdpMLineIndex ?? 0, candidate: c.candidate } });
  };
  conn.onconnectionstatechange = () => {
    const state = pc && pc.connectionState;
    /** @type {Partial<Record<RTCPeerConnectionState, string>>} */
    const words = {
      connected: 'Connected',
      disconnected: 'Reconnecting…',
      failed: 'Reconnecting… (the kiosk is setting the call up again)',
    };
    const text = state && words[state];
    if (text) $('call-status').textContent = text;
    if (state === 'connected' && !linkTimer) watchLink();
  };
  await conn.setRemoteDescription({ type: 'offer', sdp });
  for (const c of pendingIce.splice(0)) await addIce(c);
  const stream = await localMedia;
  if (!call || call.visitId !== visitId) return;
  if (stream) {
    // addTrack reuses the transceivers the offer created; make sure each one sends, and that
    // every frame it sends is sealed by the Worker first.
    for (const track of stream.getTracks()) session.attach(conn.addTrack(track, stream), 'send', track.kind);
    for (const t of conn.getTransceivers()) {
      if (t.sender.track && t.direction !== 'sendrecv') t.direction = 'sendrecv';
    }
  } else {
    $('call-status').textContent = 'Camera or microphone unavailable: the patient cannot see or hear you.';
  }
  const reply = await conn.createAnswer();
  await conn.setLocalDescription(reply);
  const local = /** @type {RTCSessionDescription} */ (conn.localDescription);
  const { half, code } = await session.agree(visitId, kiosk, local.sdp);
  if (!call || call.visitId !== visitId || e2ee !== session) return;
  hooks.send({ type: 'answer', visit_id: visitId, sdp: local.sdp, e2ee: half });
  $('call-code').textContent = code;
  $('call-e2ee').hidden = false;
  // This browser could decode none of the kiosk's video codecs and rejected the video line.
  if (call && /^m=video 0 /m.test(local.sdp)) {
    call.audioOnly = true;
    showStageNotice(AUDIO_ONLY_WORDS);
  }
}

/** @param {string} text */
function showStageNotice(text) {
  const notice = $('stage-notice');
  notice.hidden = !text;
  notice.textContent = text;
}

// ---------- connection quality ----------

/**
 * Once a second while in a call: how the patient's video and voice are arriving, as three bars
 * and plain words, and a notice when the kiosk has paused its video for a weak link (voice still
 * arrives, pictures do not). Reads this browser's own WebRTC statistics only.
 */
function watchLink() {
  /** @type {{ frames: number, audio: number, lost: number, received: number, rtt: number | null } | null} */
  let last = null;
  /** @type {number | null} */
  let stillSince = null;
  /** @type {number | null} */
  let silentSince = null;
  linkTimer = setInterval(async () => {
    if (!pc) return;
    const now = { frames: 0, audio: 0, lost: 0, received: 0, rtt: /** @type {number | null} */ (null) };
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') now.frames += r.framesDecoded || 0;
      if (r.type === 'inbound-rtp') {
        if (r.kind === 'audio') now.audio += r.packetsReceived || 0;
        now.lost += r.packetsLost || 0;
        now.received += r.packetsReceived || 0;
      }
      if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) {
        now.rtt = r.currentRoundTripTime;
      }
    });
    // A new peer connection (the kiosk reconnected) starts its counters again.
    if (last && (now.audio < last.audio || now.frames < last.frames)) last = null;
    if (last) {
      const frames = now.frames - last.frames;
      const voice = now.audio - last.audio > 0;
      const lost = now.lost - last.lost;
      const loss = lost / Math.max(1, lost + now.received - last.received);
      stillSince = frames === 0 && voice && !(call && call.audioOnly) ? (stillSince ?? Date.now()) : null;
      const paused = stillSince !== null && Date.now() - stillSince >= 2000;
      silentSince = frames === 0 && !voice ? (silentSince ?? Date.now() - 1000) : null;
      const gone = silentSince !== null && Date.now() - silentSince >= 3000;
      /** @type {keyof LINK_WORDS} */
      let level = 'good';
      if (gone || paused || loss > 0.10 || (now.rtt ?? 0) > 0.8) level = 'poor';
      else if (loss > 0.02 || (now.rtt ?? 0) > 0.3 || frames < 12) level = 'fair';
      $('link').hidden = false;
      $('link').dataset.level = level;
      $('link-words').textContent = LINK_WORDS[level];
      if (gone) showStageNotice(RECONNECTING_WORDS);
      else if (call && call.audioOnly) showStageNotice(AUDIO_ONLY_WORDS);
      else showStageNotice(paused ? PAUSED_WORDS : '');
      $('stage-notice').dataset.state = gone ? 'reconnecting' : paused ? 'paused' : '';
    }
    last = now;
  }, 1000);
}

function stopWatchingLink() {
  if (linkTimer !== null) clearInterval(linkTimer);
  linkTimer = null;
  $('link').hidden = true;
  $('stage-notice').hidden = true;
}

// ---------- ICE ----------

/**
 * A candidate from the kiosk: added now, or once the offer is in.
 * @param {Ice} ice
 */
export function remoteIce(ice) {
  if (!ice || !ice.candidate) return;
  if (pc && pc.remoteDescription) addIce(ice);
  else pendingIce.push(ice);
}

/** @param {Ice} ice */
async function addIce(ice) {
  try {
    await pc?.addIceCandidate({ candidate: ice.candidate, sdpMLineIndex: ice.mline });
  } catch (e) {
    console.warn('ICE candidate refused', e);
  }
}

// ---------- the end ----------

/**
 * A failed end-to-end check: the visit is refused on both screens, and fleetd audits which check.
 * @param {SecurityError} e
 */
function refuse(e) {
  console.error('end-to-end check failed', e.check);
  if (!call) return;
  hooks.send({ type: 'security_refused', visit_id: call.visitId, check: e.check });
  endCall('');
  const text = `The visit was refused for your patient's privacy: ${e.message}. `
    + 'Nothing was shown or heard. The kiosk says so too; tell your IT team.';
  $('call-status').textContent = text;
  hooks.notice(text);
}

/** @param {unknown} e */
function callFailed(e) {
  console.error('call set-up failed', e);
  if (call) {
    hooks.send({ type: 'end', visit_id: call.visitId });
    endCall('');
    hooks.notice('The call could not be set up. The patient is back at the start screen.');
  }
}

/**
 * Hangs up and lets go of the camera and microphone; `reason` (when not empty) is said on screen.
 * @param {EndReason | ''} reason
 */
export function endCall(reason) {
  stopWatchingLink();
  if (pc) { pc.ontrack = null; pc.onicecandidate = null; pc.onconnectionstatechange = null; pc.close(); }
  pc = null;
  if (e2ee) e2ee.close();
  e2ee = null;
  $('call-e2ee').hidden = true;
  $('call-code').textContent = '';
  pendingIce = [];
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  else if (localMedia) localMedia.then((s) => s && s.getTracks().forEach((t) => t.stop()));
  localStream = null;
  localMedia = null;
  video('remote').srcObject = null;
  video('self').srcObject = null;
  call = null;
  if (reason) {
    const text = `Call ended: ${END_WORDS[reason] || 'the visit is over'}.`;
    $('call-status').textContent = text;
    hooks.notice(text);
  }
  hooks.over();
}

// ---------- mute and camera ----------

/**
 * @param {string} id
 * @param {boolean} pressed
 * @param {string} label
 */
function setToggle(id, pressed, label) {
  const b = $(id);
  b.setAttribute('aria-pressed', String(pressed));
  b.textContent = label;
}

/**
 * @param {'audio' | 'video'} kind
 * @param {string} id
 * @param {string} onLabel
 * @param {string} offLabel
 */
function toggleTrack(kind, id, onLabel, offLabel) {
  if (!localStream) return;
  const tracks = kind === 'audio' ? localStream.getAudioTracks() : localStream.getVideoTracks();
  const off = tracks.some((t) => t.enabled);
  tracks.forEach((t) => { t.enabled = !off; });
  setToggle(id, off, off ? offLabel : onLabel);
}
