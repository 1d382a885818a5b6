// @ts-check
// The clinician console's visit codes: make a code for a patient with an appointment (shown
// large, this once, with a copy button), list my codes that still work, revoke one. Talks to
// /api/visit-codes only; never keeps a code's digits after "Done".

import { $, el, request } from './common.js';

/** @typedef {import('./wire.js').Me} Me */
/** @typedef {import('./wire.js').VisitCode} VisitCode */
/** @typedef {import('./wire.js').VisitCodeInfo} VisitCodeInfo */

/**
 * A time in the clinician's own words: "Tue 3 Dec, 14:30".
 * @param {number} unix
 */
function when(unix) {
  return new Date(unix * 1000).toLocaleString([], {
    weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  });
}

/** @param {string} text why, under the form; empty for none */
function problem(text) {
  $('codes-error').textContent = text;
}

/** Hides the code just shown and forgets its digits. */
function done() {
  $('code-digits').textContent = '';
  $('code-copied').textContent = '';
  $('code-made').hidden = true;
}

/** @param {VisitCode} made */
function showMade(made) {
  $('code-digits').textContent = made.code;
  $('code-expiry').textContent = `For ${made.clinic}. It works once, until ${when(made.expires_at)}.`;
  $('code-copied').textContent = '';
  $('code-made').hidden = false;
  $('code-copy').focus();
}

/** @param {SubmitEvent} e */
async function create(e) {
  e.preventDefault();
  problem('');
  const clinic = /** @type {HTMLSelectElement} */ ($('code-clinic')).value;
  const validMins = Number(/** @type {HTMLSelectElement} */ ($('code-valid')).value);
  const button = /** @type {HTMLButtonElement} */ ($('code-create'));
  button.disabled = true;
  const { ok, data } = await request('POST', '/api/visit-codes', { clinic, valid_mins: validMins });
  button.disabled = false;
  if (!ok) { problem(data && data.error ? data.error : 'The code could not be made.'); return; }
  showMade(/** @type {VisitCode} */ (data));
  refresh();
}

async function copy() {
  const digits = $('code-digits').textContent || '';
  try {
    await navigator.clipboard.writeText(digits);
    $('code-copied').textContent = 'Copied.';
  } catch {
    $('code-copied').textContent = 'Copying is not allowed here: read the code out instead.';
  }
}

/**
 * @param {VisitCodeInfo} code
 * @param {HTMLButtonElement} button
 */
async function revoke(code, button) {
  button.disabled = true;
  const { ok, data } = await request('DELETE', `/api/visit-codes/${encodeURIComponent(code.id)}`);
  if (!ok) problem(data && data.error ? data.error : 'The code could not be revoked.');
  refresh();
}

/** Reads my codes again and lists them. */
export async function refresh() {
  const { ok, data } = await request('GET', '/api/visit-codes');
  if (!ok) return;
  /** @type {VisitCodeInfo[]} */
  const codes = data;
  $('code-list').replaceChildren(...codes.map((code) => {
    const button = /** @type {HTMLButtonElement} */ (el('button', {
      type: 'button', className: 'quiet', textContent: 'Revoke',
    }));
    button.setAttribute('aria-label', `Revoke the code for ${code.clinic} made ${when(code.created_at)}`);
    button.addEventListener('click', () => revoke(code, button));
    return el('li', null,
      el('span', { className: 'code-clinic' }, code.clinic),
      el('span', { className: 'code-until' }, `works until ${when(code.expires_at)}`),
      code.in_use && el('span', { className: 'badge' }, 'A patient is using it'),
      button);
  }));
  $('code-list-empty').hidden = codes.length > 0;
}

/**
 * Shows the panel to a clinician, with their clinics to choose from.
 * @param {Me} me
 */
export function start(me) {
  const clinician = me.role === 'clinician';
  $('codes').hidden = !clinician;
  if (!clinician) return;
  const clinics = me.clinics || [];
  $('code-clinic').replaceChildren(...clinics.map((c) => el('option', { value: c, textContent: c })));
  /** @type {HTMLButtonElement} */ ($('code-create')).disabled = clinics.length === 0;
  if (clinics.length === 0) problem('You have no clinic assigned, so you cannot make visit codes.');
  refresh();
}

/** Signed out: nothing of the codes stays on screen. */
export function stop() {
  done();
  problem('');
  $('code-list').replaceChildren();
  $('codes').hidden = true;
}

$('visit-code-form').addEventListener('submit', (e) => create(/** @type {SubmitEvent} */ (e)));
$('code-copy').addEventListener('click', copy);
$('code-done').addEventListener('click', done);
