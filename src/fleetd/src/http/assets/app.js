// @ts-check
// telekiosk clinician console. ES modules, no build step, no external resources.
// Signs in, lists waiting kiosks live over /ws, and hands the visit it joins to call.js; calls
// for help are help.js's, visit codes visit-codes.js's.

import { $, currentUser, signinRefusal, request, roomLabel, wireSession } from './common.js';
import * as calls from './call.js';
import { whyNot } from './call-e2ee.js';
import * as help from './help.js';
import * as codes from './visit-codes.js';

/** @typedef {import('./wire.js').Me} Me */
/** @typedef {import('./wire.js').WaitingVisit} WaitingVisit */
/** @typedef {import('./wire.js').Language} Language */
/** @typedef {import('./wire.js').ConsoleToServer} ConsoleToServer */
/** @typedef {import('./wire.js').ServerToConsole} ServerToConsole */
/** @typedef {WaitingVisit & { base: number, at: number }} Waiting a row, with when it was counted */
/** @typedef {'signin' | 'queue' | 'call'} View */

/** @type {View} */
let view = 'signin';
/** @type {Me | null} while signed in */
let me = null;
/** @type {WebSocket | null} */
let ws = null;
let retry = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retryTimer;
/** @type {Waiting[]} */
let queue = [];
/** @type {ReturnType<typeof setTimeout> | undefined} */
let noticeTimer;

// ---------- views ----------

/** @param {View} next */
function show(next) {
  view = next;
  $('signin-view').hidden = next !== 'signin';
  $('queue-view').hidden = next !== 'queue';
  $('call').hidden = next !== 'call';
  $('account').hidden = next === 'signin';
  if (next === 'signin') $('username').focus();
}

/** @param {string} text a passing notice above the list; empty hides it */
function notice(text) {
  const el = $('notice');
  el.textContent = text;
  el.hidden = !text;
  clearTimeout(noticeTimer);
  if (text) noticeTimer = setTimeout(() => { el.hidden = true; }, 12000);
}

/**
 * @param {'connecting' | 'live' | 'lost'} state
 * @param {string} text
 */
function linkState(state, text) {
  const el = $('link-state');
  el.dataset.state = state;
  el.textContent = text;
}

// ---------- the waiting list ----------

/** @type {Record<Language, string>} the patient's language, in words */
const LANGUAGES = { en: 'English', es: 'Spanish' };

/** @param {number} secs */
function formatWait(secs) {
  const m = Math.floor(secs / 60);
  const s = String(secs % 60).padStart(2, '0');
  return m >= 60 ? `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min` : `${m}:${s}`;
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
    if (v.language || v.for_you) {
      const tags = document.createElement('div');
      tags.className = 'tags';
      if (v.language) {
        const language = document.createElement('span');
        language.className = 'language';
        language.textContent = LANGUAGES[v.language] || v.language;
        tags.append(language);
      }
      if (v.for_you) {
        const mine = document.createElement('span');
        mine.className = 'badge';
        mine.textContent = 'For you (visit code)';
        tags.append(mine);
      }
      place.append(tags);
    }
    const waited = document.createElement('div');
    waited.className = 'waited';
    waited.append('Waiting ', document.createElement('strong'));
    const join = document.createElement('button');
    join.type = 'button';
    join.className = 'join primary';
    join.dataset.visit = v.visit_id;
    join.textContent = 'Join';
    join.setAttribute('aria-label', `Join ${roomLabel(v.room) || 'the visit'} at ${v.clinic}`);
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

/**
 * Asks fleetd for the visit; the button rests a moment so one press sends one Join.
 * @param {string} visitId
 * @param {HTMLButtonElement | null} button
 */
function joinVisit(visitId, button) {
  if (calls.current()) return;
  // A browser that cannot encrypt the visit end to end does not join it (never a downgrade).
  const cannot = whyNot();
  if (cannot) {
    notice(cannot);
    return;
  }
  if (button) {
    button.disabled = true;
    setTimeout(() => { button.disabled = false; }, 3000);
  }
  notice('');
  send({ type: 'join', visit_id: visitId });
}

/**
 * Emergency access ("break glass"): a visit of another clinic, by id, with a reason.
 * @param {SubmitEvent} e
 */
function emergencyJoin(e) {
  e.preventDefault();
  if (calls.current()) return;
  const visitId = /** @type {HTMLInputElement} */ ($('emergency-visit')).value.trim();
  const reason = /** @type {HTMLInputElement} */ ($('emergency-reason')).value.trim();
  if (!visitId || !reason) { notice('Give the visit id and the reason for emergency access.'); return; }
  const cannot = whyNot();
  if (cannot) { notice(cannot); return; }
  notice('');
  send({ type: 'emergency_join', visit_id: visitId, reason });
}

// ---------- session ----------

/** @param {Me} user */
function start(user) {
  me = user;
  const clinics = user.clinics && user.clinics.length ? ` · ${user.clinics.join(', ')}` : '';
  $('who').textContent = `${user.username}${clinics}`;
  // Only a clinician joins visits; fleetd refuses the others and says so.
  $('emergency').hidden = user.role !== 'clinician';
  codes.start(user);
  show('queue');
  connect();
}

/** @param {string} message why, on the sign-in form; empty for none */
function signedOut(message) {
  me = null;
  clearTimeout(retryTimer);
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  if (calls.current()) calls.endCall('');
  queue = [];
  renderQueue();
  help.stop();
  codes.stop();
  show('signin');
  $('signin-error').textContent = message || signinRefusal();
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
    const call = calls.current();
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
    if (calls.current()) $('call-status').textContent = 'Server connection lost: the call goes on. Reconnecting to the server…';
    linkState('lost', 'Reconnecting…');
    afterDisconnect();
  };
}

async function afterDisconnect() {
  if (!me) return;
  // Refused: the session is over. Not reachable (status 0): keep trying.
  const { status } = await request('GET', '/api/me');
  if (status === 401) { signedOut('Your session has ended. Please sign in again.'); return; }
  const delay = Math.min(15000, 500 * 2 ** retry) * (0.75 + Math.random() / 2);
  retry = Math.min(retry + 1, 5);
  retryTimer = setTimeout(() => { if (me) connect(); }, delay);
}

/** @param {ConsoleToServer} msg */
function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

/** @param {ServerToConsole} msg */
function onMessage(msg) {
  const call = calls.current();
  const ours = (/** @type {{ visit_id: string }} */ m) => call !== null && m.visit_id === call.visitId;
  switch (msg.type) {
    case 'queue': {
      const at = performance.now();
      const had = queue.some((v) => v.for_you);
      queue = msg.waiting.map((v) => ({ ...v, base: v.waiting_secs, at }));
      renderQueue();
      // A patient with one of my codes arrived (or left): the codes' "in use" follows.
      if (had || queue.some((v) => v.for_you)) codes.refresh();
      break;
    }
    case 'joined':
      calls.beginCall(msg);
      show('call');
      break;
    case 'resumed':
      if (ours(msg)) $('call-status').textContent = 'Connected';
      break;
    case 'already_taken':
      notice('This visit was already taken by another clinician.');
      break;
    case 'offer':
      if (ours(msg)) calls.onOffer(msg);
      break;
    case 'key_confirm':
      if (ours(msg)) calls.onKeyConfirm(msg.confirm);
      break;
    case 'ice':
      if (ours(msg)) calls.remoteIce(msg.ice);
      break;
    case 'ended':
      if (ours(msg)) calls.endCall(msg.reason);
      break;
    case 'error':
      if (view === 'call') $('call-status').textContent = msg.message;
      else notice(msg.message);
      break;
    case 'help':
      help.show(msg.alerts);
      break;
    default:
      break;
  }
}

// ---------- wiring ----------

wireSession({ signedIn: start, signedOut });
$('emergency-form').addEventListener('submit', (e) => emergencyJoin(/** @type {SubmitEvent} */ (e)));
calls.setUp({ send, notice, over: () => { if (me) show('queue'); } });
help.setUp(send);

// For end-to-end tests and support: the live peer connection and its encryption counts, the
// current view, and Join by id
// (what the Join button of a list row does).
Object.assign(window, {
  telekiosk: {
    get pc() { return calls.peer(); },
    /** The end-to-end encryption's counts (sealed, opened, authFailures), or null. */
    protection() { return calls.protection(); },
    get view() { return view; },
    /** @param {string} visitId */
    join(visitId) { joinVisit(visitId, null); },
  },
});

(async () => {
  const user = await currentUser();
  if (user) start(user); else signedOut('');
})();
