// @ts-check
// The admin console's words for times, health, links and commands.

import { el } from './common.js';

/** @typedef {import('./wire.js').NetworkQuality} NetworkQuality */
/** @typedef {import('./wire.js').PartStatus} PartStatus */
/** @typedef {import('./wire.js').DeviceState} DeviceState */
/** @typedef {import('./wire.js').FleetDevice} FleetDevice */
/** @typedef {import('./wire.js').Command} Command */

/**
 * The last call's link at its worst, in plain words (what fleet admins compare across clinics).
 * @param {NetworkQuality} n
 */
export function linkWords(n) {
  const parts = [];
  if (n.worst_level) parts.push(n.worst_level === 'good' ? 'good' : n.worst_level === 'fair' ? 'fair at worst' : 'poor at worst');
  parts.push(`${n.rtt_ms} ms round trip`, `${(n.loss_permille / 10).toFixed(1)} % loss`);
  if (n.min_estimate_kbps) parts.push(`down to ${n.min_estimate_kbps} kb/s`);
  if (n.video_paused_secs) parts.push(`video paused ${n.video_paused_secs} s`);
  return parts.join(', ');
}

/** @param {number | null | undefined} unix */
export function when(unix) {
  if (!unix) return '—';
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** @param {number | null | undefined} unix */
export function ago(unix) {
  if (!unix) return 'never';
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return when(unix);
}

/**
 * When a kiosk's certificate ends, with a warning when less than 30 days are left (a kiosk
 * renews it at two thirds of its life, so that means it has not managed to).
 * @param {number | null | undefined} unix
 */
export function certificateEnd(unix) {
  if (!unix) return '—';
  const days = Math.floor((unix - Date.now() / 1000) / 86400);
  if (days < 0) return `expired ${when(unix)}: enrol this kiosk again`;
  if (days < 30) return `${when(unix)}: only ${days} days left and not renewed yet`;
  return when(unix);
}

/** @param {number} secs */
export function duration(secs) {
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

/** @type {Record<PartStatus, [string, string]>} */
const PART = {
  ok: ['ok', 'OK'], missing: ['warn', 'Missing'], failed: ['bad', 'Failed'], unknown: ['', 'Unknown'],
};

/** @param {PartStatus | undefined} status */
export function part(status) {
  const [cls, text] = (status && PART[status]) || PART.unknown;
  return el('span', { className: `dot ${cls}` }, text);
}

/** @param {FleetDevice} device */
export function presence(device) {
  const s = device.state;
  if (!s) return el('span', { className: 'dot' }, 'Never seen');
  return s.presence === 'online'
    ? el('span', { className: 'dot ok' }, 'Online')
    : el('span', { className: 'dot bad' }, 'Offline');
}

/** The parts of a kiosk. */
export const PARTS = /** @type {const} */ (['camera', 'microphone', 'speaker', 'tpm']);

/**
 * Parts reported missing or failed; "unknown" (no call yet to prove a part) is not a problem.
 * @param {DeviceState | null} s
 */
export function healthIssues(s) {
  const bad = ['missing', 'failed'];
  return s ? PARTS.filter((p) => bad.includes(s.health[p])).length : 0;
}

/** @param {Command} c */
export function commandName(c) {
  switch (c.type) {
    case 'identify': return `Identify (${c.seconds} s)`;
    case 'collect_diagnostics': return 'Diagnostics';
    case 'probe_hardware': return 'Hardware probe';
    case 'restart_app': return 'Restart app';
    case 'reboot': return 'Reboot';
    case 'install_update': return `OS update to ${c.version}`;
    default: return /** @type {{ type: string }} */ (c).type;
  }
}

/** What each phase of an OS update is called on a kiosk's page. */
const PHASE = {
  downloading: 'downloading',
  waiting_for_visit: 'downloaded; installs when no patient is at the kiosk',
  installing: 'installing into the other slot',
  waiting_to_reboot: 'installed; reboots when allowed',
  rebooting: 'rebooting into it',
};

/**
 * The operating-system facts of a kiosk's page.
 * @param {import('./wire.js').OsState | undefined} os
 * @returns {[string, string | Node][]}
 */
export function osFacts(os) {
  if (!os) return [['Image', 'not an appliance image (no OS updates)']];
  const u = os.update;
  const progress = u && u.phase === 'downloading' && u.total_bytes
    ? ` (${Math.floor((100 * u.done_bytes) / u.total_bytes)} % of ${(u.total_bytes / 1048576).toFixed(0)} MiB)` : '';
  return [
    ['Version', os.version || '—'],
    ['Slot', os.slot ? `${os.slot}${os.trial ? ' (on trial: not yet marked good)' : ''}` : '—'],
    ['Update', u ? `${u.version}: ${PHASE[u.phase] || u.phase}${progress}` : 'none in progress'],
    ['Last failed', os.failed ? el('span', { className: 'refusal' }, `${os.failed.version}: ${os.failed.reason}`) : 'none'],
  ];
}
