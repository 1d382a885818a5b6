// @ts-check
// A kiosk's hardware probe (`probe_hardware` command, `telekiosk probe` on the board): the
// suggested profile and what does not fit first, then the encoders, devices, TPM, displays and
// watchdogs.

import { el } from './common.js';

/** @typedef {import('./wire.js').ProbeReport} ProbeReport */
/** @typedef {import('./wire.js').EncodeOutcome} EncodeOutcome */

/** The commands whose full report is open: the page is drawn again every few seconds. */
const openReports = new Set();

/**
 * The report as the device page shows it; text that is not a report is shown as it is.
 * @param {string} commandId
 * @param {string} detail the command result's detail (JSON text)
 * @returns {HTMLElement}
 */
export function probeReport(commandId, detail) {
  /** @type {ProbeReport} */
  let r;
  try {
    r = JSON.parse(detail);
  } catch {
    return el('span', {}, `done: ${detail.slice(0, 300)}`);
  }
  const s = r.suggestion;
  const summary = s.profile
    ? `Suggested profile: ${s.profile} (${s.why})`
    : `No shipped profile fits: ${s.why}`;
  const details = /** @type {HTMLDetailsElement} */ (el('details', { className: 'probe' },
    el('summary', {}, `${r.machine.model || 'Unknown board'} · ${r.machine.arch}, ${r.machine.cpus} processors`),
    encoderTable(r),
    facts('Cameras', r.cameras.map((c) =>
      `${c.name} (${c.stable_name || c.device}): ${c.modes.slice(0, 6).join(', ') || 'no modes'}`)),
    facts('Microphones', r.microphones.map((d) => `${d.name}: ${d.source}`)),
    facts('Speakers', r.speakers.map((d) => `${d.name}: ${d.source}`)),
    facts('TPM', [`${r.tpm.tcti} ${r.tpm.ok ? 'answers' : 'does not answer'}: ${r.tpm.detail}`]),
    facts('Displays', r.displays.map((d) => `${d.connector} ${d.connected ? 'connected' : 'not connected'}`
      + `${d.px_per_mm ? `, ${d.px_per_mm} px/mm` : ''} ${d.modes.slice(0, 3).join(' ')}`)),
    facts('Watchdogs', (r.watchdogs ?? []).map((w) => `${w.device} (${w.identity}): `
      + `${w.active ? 'active' : 'not in use'}${w.timeout_secs ? `, resets after ${w.timeout_secs} s` : ''}`))));
  details.open = openReports.has(commandId);
  details.addEventListener('toggle', () => {
    if (details.open) openReports.add(commandId); else openReports.delete(commandId);
  });
  return el('div', {},
    el('div', { className: s.profile ? '' : 'refusal' }, summary),
    s.warnings.length ? el('ul', { className: 'warnings' }, ...s.warnings.map((w) => el('li', {}, w))) : null,
    details);
}

/** @param {ProbeReport} r */
function encoderTable(r) {
  const rows = r.encoders.map((e) => el('tr', {},
    el('td', {}, e.name), el('td', {}, e.hardware ? 'hardware' : 'software'),
    el('td', {}, outcomeWords(e.outcome))));
  return el('table', { className: 'grid' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Encoder'), el('th', {}, 'Kind'), el('th', {}, '720p30 trial'))),
    el('tbody', {}, ...rows));
}

/** @param {EncodeOutcome} o */
function outcomeWords(o) {
  switch (o.status) {
    case 'missing': return 'not installed';
    case 'failed': return `failed: ${o.error}`;
    case 'encoded': return `${Math.round(o.fps)} fps flat out, ${Math.round(o.cpu_percent)} % of a core, ${o.kbps} kb/s`;
    default: return '—';
  }
}

/**
 * @param {string} title
 * @param {string[]} lines
 */
function facts(title, lines) {
  return el('div', {}, el('h3', {}, title),
    el('ul', {}, ...(lines.length ? lines : ['none found']).map((l) => el('li', {}, l))));
}
