// @ts-check
// Calls for help from the kiosks of my clinics ("Get help from staff" on a kiosk): a banner
// above everything else, "Room 2 at North Clinic asks for help · 1 min", each with an
// "I'm on my way" button that answers it (fleetd tells the kiosk and clears it everywhere).
// Shows only what fleetd sends: the kiosk's place and how long ago, never patient data.

import { $, el, roomLabel } from './common.js';

/** @typedef {import('./wire.js').HelpAlert} HelpAlert */
/** @typedef {import('./wire.js').ConsoleToServer} ConsoleToServer */
/** @typedef {HelpAlert & { base: number, at: number }} Open an alert, with when it was counted */

/** @type {Open[]} */
let open = [];
/** @type {(msg: ConsoleToServer) => void} */
let send = () => {};

/** @param {HelpAlert} a */
function words(a) {
  return `${roomLabel(a.room) || 'A kiosk'} at ${a.clinic || 'your clinic'} asks for help`;
}

/** @param {number} secs */
function age(secs) {
  return secs < 60 ? 'just now' : `${Math.floor(secs / 60)} min`;
}

function tick() {
  const now = performance.now();
  for (const a of open) {
    const cell = $('help-list').querySelector(`li[data-visit="${CSS.escape(a.visit_id)}"] .help-age`);
    if (cell) cell.textContent = age(a.base + Math.floor((now - a.at) / 1000));
  }
}
setInterval(tick, 1000);

/**
 * The open calls for help, as fleetd last sent them.
 * @param {HelpAlert[]} alerts
 */
export function show(alerts) {
  const known = new Set(open.map((a) => a.visit_id));
  const at = performance.now();
  open = alerts.map((a) => ({ ...a, base: a.waiting_secs, at }));
  $('help-list').replaceChildren(...open.map((a) => {
    const button = /** @type {HTMLButtonElement} */ (el('button', {
      type: 'button', className: 'primary', textContent: "I'm on my way",
    }));
    button.setAttribute('aria-label', `I'm on my way to ${roomLabel(a.room) || 'the kiosk'} at ${a.clinic}`);
    button.addEventListener('click', () => {
      button.disabled = true;
      send({ type: 'answer_help', visit_id: a.visit_id });
    });
    const li = el('li', null, el('span', { className: 'help-words' }, words(a)), ' · ',
      el('span', { className: 'help-age' }, age(a.base)), button);
    li.dataset.visit = a.visit_id;
    return li;
  }));
  $('help').hidden = open.length === 0;
  // Screen readers hear of a new call once, not of every tick of its age.
  const fresh = open.filter((a) => !known.has(a.visit_id));
  if (fresh.length) $('help-announce').textContent = fresh.map(words).join('. ');
}

/** @param {(msg: ConsoleToServer) => void} sender how answers reach fleetd */
export function setUp(sender) {
  send = sender;
}

/** Signed out: no call stays on screen. */
export function stop() {
  show([]);
  $('help-announce').textContent = '';
}
