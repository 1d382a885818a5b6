// telekiosk clinician console. Plain JavaScript, no build step, no external resources.
// Signs in, lists waiting kiosks live over /ws, and answers the kiosk's WebRTC offer.
'use strict';

const $ = (id) => document.getElementById(id);

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
};

let view = 'signin';      // 'signin' | 'queue' | 'call'
let me = null;            // { username, role } while signed in
let ws = null;
let retry = 0;
let retryTimer = null;
let queue = [];           // [{ visit_id, clinic, room, base, at }]
let call = null;          // { visitId, clinic, room } while joined
let pc = null;
let localStream = null;
let localMedia = null;    // Promise<MediaStream|null> started on `joined`
let pendingIce = [];
let noticeTimer = null;

// ---------- views ----------

function show(next) {
  view = next;
  $('signin-view').hidden = next !== 'signin';
  $('queue-view').hidden = next !== 'queue';
  $('call').hidden = next !== 'call';
  $('account').hidden = next === 'signin';
  if (next === 'signin') $('username').focus();
}

function notice(text) {
  const el = $('notice');
  el.textContent = text;
  el.hidden = !text;
  clearTimeout(noticeTimer);
  if (text) noticeTimer = setTimeout(() => { el.hidden = true; }, 12000);
}

function linkState(state, text) {
  const el = $('link-state');
  el.dataset.state = state;
  el.textContent = text;
}

function formatWait(secs) {
  const m = Math.floor(secs / 60);
  const s = String(secs % 60).padStart(2, '0');
  return m >= 60 ? `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min` : `${m}:${s}`;
}

// "3" reads as "Room 3"; a named room ("Exam 1") is shown as it is.
function roomLabel(room) {
  return /^\d+[A-Za-z]?$/.test(room || '') ? `Room ${room}` : room;
}

function renderQueue() {
  const list = $('queue');
  list.replaceChildren(...queue.map((v) => {
    const li = document.createElement('li');
    li.dataset.visit = v.visit_id;
    const place = document.createElement('div');
    place.className = 'place';
    const clinic = document.createElement('div');
    clinic.className = 'clinic';
    clinic.textContent = v.clinic || 'Unnamed clinic';
    const room = document.createElement('div');
    room.className = 'room';
    room.textContent = roomLabel(v.room) || 'Room not set';
    place.append(clinic, room);
    const waited = document.createElement('div');
    waited.className = 'waited';
    waited.append('Waiting ', document.createElement('strong'));
    const join = document.createElement('button');
    join.type = 'button';
    join.className = 'join primary';
    join.dataset.visit = v.visit_id;
    join.textContent = 'Join';
    join.addEventListener('click', () => joinVisit(v.visit_id, join));
    li.append(place, waited, join);
    return li;
  }));
  $('queue-empty').hidden = queue.length > 0;
  $('queue-count').textContent = queue.length ? `(${queue.length})` : '';
  tick();
}

function tick() {
  const now = performance.now();
  for (const v of queue) {
    const row = $('queue').querySelector(`li[data-visit="${CSS.escape(v.visit_id)}"] .waited strong`);
    if (row) row.textContent = formatWait(v.base + Math.floor((now - v.at) / 1000));
  }
}
setInterval(tick, 1000);

// ---------- session ----------

async function api(path, body) {
  const init = body === undefined ? { method: 'GET' } : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const res = await fetch(path, { ...init, credentials: 'same-origin', cache: 'no-store' });
  let data = null;
  try { data = await res.json(); } catch { /* empty body */ }
  return { status: res.status, data };
}

async function signIn(event) {
  event.preventDefault();
  const button = $('signin');
  $('signin-error').textContent = '';
  button.disabled = true;
  try {
    const { status, data } = await api('/api/login', {
      username: $('username').value.trim(), password: $('password').value,
    });
    if (status === 200) {
      $('password').value = '';
      start(data);
    } else {
      $('signin-error').textContent = (data && data.error) || 'Signing in failed. Please try again.';
      $('password').select();
    }
  } catch {
    $('signin-error').textContent = 'The server cannot be reached. Check the network and try again.';
  } finally {
    button.disabled = false;
  }
}

function start(user) {
  me = user;
  $('who').textContent = user.username;
  show('queue');
  connect();
}

function signedOut(message) {
  me = null;
  clearTimeout(retryTimer);
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  if (call) endCall('');
  queue = [];
  renderQueue();
  show('signin');
  $('signin-error').textContent = message || '';
}

// ---------- WebSocket ----------

function connect() {
  clearTimeout(retryTimer);
  linkState('connecting', 'Connecting…');
  const socket = new WebSocket(`wss://${location.host}/ws`);
  ws = socket;
  socket.onopen = () => {
    retry = 0;
    linkState('live', 'Live');
    // Back after a drop (a network blip, a server restart) in the middle of a call: the call's
    // media never went through the server, so ask for the visit back rather than end it.
    if (call) send({ type: 'resume', visit_id: call.visitId });
  };
  socket.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    onMessage(msg);
  };
  socket.onclose = () => {
    if (ws !== socket) return;
    ws = null;
    if (call) $('call-status').textContent = 'Server connection lost: the call goes on. Reconnecting to the server…';
    linkState('lost', 'Reconnecting…');
    afterDisconnect();
  };
}

async function afterDisconnect() {
  if (!me) return;
  try {
    const { status } = await api('/api/me');
    if (status === 401) { signedOut('Your session has ended. Please sign in again.'); return; }
  } catch { /* server unreachable: keep trying */ }
  const delay = Math.min(15000, 500 * 2 ** retry) * (0.75 + Math.random() / 2);
  retry = Math.min(retry + 1, 5);
  retryTimer = setTimeout(() => { if (me) connect(); }, delay);
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function onMessage(msg) {
  switch (msg.type) {
    case 'queue': {
      const at = performance.now();
      queue = msg.waiting.map((v) => ({ ...v, base: v.waiting_secs, at }));
      renderQueue();
      break;
    }
    case 'joined':
      beginCall(msg);
      break;
    case 'resumed':
      if (call && msg.visit_id === call.visitId) $('call-status').textContent = 'Connected';
      break;
    case 'already_taken':
      notice('This visit was already taken by another clinician.');
      break;
    case 'offer':
      if (call && msg.visit_id === call.visitId) answer(msg.sdp).catch(callFailed);
      break;
    case 'ice':
      if (call && msg.visit_id === call.visitId) remoteIce(msg.ice);
      break;
    case 'ended':
      if (call && msg.visit_id === call.visitId) endCall(msg.reason);
      break;
    case 'error':
      if (view === 'call') $('call-status').textContent = msg.message;
      else notice(msg.message);
      break;
    default:
      break;
  }
}

// ---------- call ----------

function joinVisit(visitId, button) {
  if (call) return;
  if (button) {
    button.disabled = true;
    setTimeout(() => { button.disabled = false; }, 3000);
  }
  notice('');
  send({ type: 'join', visit_id: visitId });
}

function beginCall(msg) {
  call = { visitId: msg.visit_id, clinic: msg.clinic, room: msg.room, ice: msg.ice || {} };
  $('call-place').textContent = [msg.clinic, roomLabel(msg.room)].filter(Boolean).join(' · ');
  $('call-status').textContent = 'Connecting…';
  setToggle('mute', false, 'Mute');
  setToggle('camera', false, 'Camera off');
  show('call');
  // Ask for the camera now so the self view is up by the time the kiosk's offer arrives.
  localMedia = navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then((stream) => {
    localStream = stream;
    $('self').srcObject = stream;
    return stream;
  }, () => null);
}

async function answer(sdp) {
  const visitId = call.visitId;
  if (pc) {
    // The kiosk rebuilt its side to reconnect and made a new offer: a new peer connection
    // replaces the old one (the camera and microphone stay on).
    pc.ontrack = null; pc.onicecandidate = null; pc.onconnectionstatechange = null;
    pc.close();
    pendingIce = [];
  }
  // STUN/TURN servers from fleetd, with TURN credentials minted for this visit; relay only
  // where the clinic's firewall allows nothing else.
  const ice = call.ice || {};
  pc = new RTCPeerConnection({
    iceServers: (ice.servers || []).map(({ urls, username, credential }) => ({ urls, username, credential })),
    iceTransportPolicy: ice.relay_only ? 'relay' : 'all',
  });
  const remote = new MediaStream();
  $('remote').srcObject = remote;
  // The kiosk's offer carries no a=msid, so tracks come without streams: collect them here.
  pc.ontrack = (e) => { remote.addTrack(e.track); };
  pc.onicecandidate = (e) => {
    const c = e.candidate;
    if (!c || !c.candidate) return;
    send({ type: 'ice', visit_id: visitId, ice: { mline: c.sdpMLineIndex ?? 0, candidate: c.candidate } });
  };
  pc.onconnectionstatechange = () => {
    const state = pc && pc.connectionState;
    const words = {
      connected: 'Connected',
      disconnected: 'Reconnecting…',
      failed: 'Reconnecting… (the kiosk is setting the call up again)',
    };
    if (words[state]) $('call-status').textContent = words[state];
    if (state === 'connected' && !linkTimer) watchLink();
  };
  await pc.setRemoteDescription({ type: 'offer', sdp });
  for (const c of pendingIce.splice(0)) await addIce(c);
  const stream = await localMedia;
  if (!call || call.visitId !== visitId) return;
  if (stream) {
    // addTrack reuses the transceivers the offer created; make sure each one sends.
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    for (const t of pc.getTransceivers()) {
      if (t.sender.track && t.direction !== 'sendrecv') t.direction = 'sendrecv';
    }
  } else {
    $('call-status').textContent = 'Camera or microphone unavailable: the patient cannot see or hear you.';
  }
  const reply = await pc.createAnswer();
  await pc.setLocalDescription(reply);
  send({ type: 'answer', visit_id: visitId, sdp: pc.localDescription.sdp });
  // This browser could decode none of the kiosk's video codecs and rejected the video line.
  if (call && /^m=video 0 /m.test(pc.localDescription.sdp)) {
    call.audioOnly = true;
    showStageNotice(AUDIO_ONLY_WORDS);
  }
}

const AUDIO_ONLY_WORDS = 'Video could not start with this browser; audio only. You can still talk.';
const PAUSED_WORDS = 'Video paused: weak connection. You can still talk; the picture comes back by itself.';
const RECONNECTING_WORDS = 'Reconnecting… Nothing is arriving from the kiosk. Stay on: the call comes back by itself.';

function showStageNotice(text) {
  const notice = $('stage-notice');
  notice.hidden = !text;
  notice.textContent = text;
}

// ---------- connection quality ----------

const LINK_WORDS = { good: 'Good connection', fair: 'Fair connection', poor: 'Weak connection' };
let linkTimer = null;

/**
 * Once a second while in a call: how the patient's video and voice are arriving, as three bars
 * and plain words, and a notice when the kiosk has paused its video for a weak link (voice still
 * arrives, pictures do not). Reads this browser's own WebRTC statistics only.
 */
function watchLink() {
  let last = null;
  let stillSince = null;
  let silentSince = null;
  linkTimer = setInterval(async () => {
    if (!pc) return;
    const now = { frames: 0, audio: 0, lost: 0, received: 0, rtt: null };
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
  clearInterval(linkTimer);
  linkTimer = null;
  $('link').hidden = true;
  $('stage-notice').hidden = true;
}

function remoteIce(ice) {
  if (!ice || !ice.candidate) return;
  if (pc && pc.remoteDescription) addIce(ice);
  else pendingIce.push(ice);
}

async function addIce(ice) {
  try {
    await pc.addIceCandidate({ candidate: ice.candidate, sdpMLineIndex: ice.mline });
  } catch (e) {
    console.warn('ICE candidate refused', e);
  }
}

function callFailed(e) {
  console.error('call set-up failed', e);
  if (call) {
    send({ type: 'end', visit_id: call.visitId });
    endCall('');
    notice('The call could not be set up. The patient is back at the start screen.');
  }
}

function endCall(reason) {
  stopWatchingLink();
  if (pc) { pc.ontrack = null; pc.onicecandidate = null; pc.onconnectionstatechange = null; pc.close(); }
  pc = null;
  pendingIce = [];
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  else if (localMedia) localMedia.then((s) => s && s.getTracks().forEach((t) => t.stop()));
  localStream = null;
  localMedia = null;
  $('remote').srcObject = null;
  $('self').srcObject = null;
  call = null;
  if (reason) {
    const text = `Call ended: ${END_WORDS[reason] || 'the visit is over'}.`;
    $('call-status').textContent = text;
    notice(text);
  }
  if (me) show('queue');
}

function setToggle(id, pressed, label) {
  const b = $(id);
  b.setAttribute('aria-pressed', String(pressed));
  b.textContent = label;
}

function toggleTrack(kind, id, onLabel, offLabel) {
  if (!localStream) return;
  const tracks = kind === 'audio' ? localStream.getAudioTracks() : localStream.getVideoTracks();
  const off = tracks.some((t) => t.enabled);
  tracks.forEach((t) => { t.enabled = !off; });
  setToggle(id, off, off ? offLabel : onLabel);
}

// ---------- wiring ----------

$('signin-form').addEventListener('submit', signIn);
$('signout').addEventListener('click', async () => {
  try { await api('/api/logout', {}); } catch { /* signing out locally anyway */ }
  signedOut('');
});
$('mute').addEventListener('click', () => toggleTrack('audio', 'mute', 'Mute', 'Unmute'));
$('camera').addEventListener('click', () => toggleTrack('video', 'camera', 'Camera off', 'Camera on'));
$('end').addEventListener('click', () => {
  if (!call) return;
  send({ type: 'end', visit_id: call.visitId });
  endCall('clinician_ended');
});

// For end-to-end tests and support: the live peer connection, the current view, and Join by id
// (what the Join button of a list row does).
window.telekiosk = {
  get pc() { return pc; },
  get view() { return view; },
  join(visitId) { joinVisit(visitId, null); },
};

(async () => {
  try {
    const { status, data } = await api('/api/me');
    if (status === 200) { start(data); return; }
  } catch { /* not reachable yet: show the sign-in form */ }
  show('signin');
})();
