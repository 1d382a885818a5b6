// @ts-check
// The admin console's Fleet tab (every kiosk at a glance) and kiosk page (state, health, config,
// commands).

import { $, el, input, request, roomLabel } from './common.js';
import {
  PARTS, ago, certificateEnd, commandName, duration, healthIssues, linkWords, osFacts, part, presence, when,
} from './admin-format.js';
import { probeReport } from './admin-probe.js';

/** @typedef {import('./wire.js').FleetDevice} FleetDevice */
/** @typedef {import('./wire.js').DeviceDetail} DeviceDetail */
/** @typedef {import('./wire.js').Command} Command */

// ---------- fleet ----------

export async function renderFleet() {
  const { ok, data } = await request('GET', '/api/admin/fleet');
  if (!ok) return;
  const devices = /** @type {FleetDevice[]} */ (data);
  const online = devices.filter((d) => d.state && d.state.presence === 'online').length;
  const refused = devices.filter((d) => d.state && d.state.config_refusal).length;
  const sick = devices.filter((d) => d.state && healthIssues(d.state) > 0).length;
  /**
   * @param {number} n
   * @param {string} text
   * @param {string} cls
   */
  const tile = (n, text, cls) => el('div', { className: `tile ${n ? cls : ''}` },
    el('div', { className: 'n' }, n), el('div', { className: 't' }, text));
  $('tiles').replaceChildren(
    tile(devices.length, 'Kiosks', ''),
    tile(online, 'Online', 'good'),
    tile(devices.length - online, 'Offline or never seen', 'bad'),
    tile(refused, 'Refused their config', 'bad'),
    tile(sick, 'With a hardware problem', 'bad'),
  );
  /**
   * @param {FleetDevice} a
   * @param {FleetDevice} b
   */
  const byPlace = (a, b) => a.clinic.localeCompare(b.clinic) || a.room.localeCompare(b.room, undefined, { numeric: true });
  const rows = [...devices].sort(byPlace).map((d) => {
    const s = d.state;
    const cfg = el('td', {},
      s ? `v${s.config_version}` : '—',
      d.published_version != null ? el('div', { className: 'sub' }, `sent v${d.published_version}`) : null,
      s && s.config_refusal ? el('div', { className: 'refusal' },
        `refused v${s.config_refusal.version}: ${s.config_refusal.reason}`) : null);
    const parts = PARTS.map((p) => el('td', {}, part(s ? s.health[p] : 'unknown')));
    const tr = el('tr', { className: 'clickable' },
      el('td', {}, el('a', { href: `#device/${encodeURIComponent(d.id)}` }, d.id),
        el('div', { className: 'sub' }, d.status),
        // Compared with the one the kiosk shows before approving it (review M5).
        d.status === 'pending' ? el('div', { className: 'sub' }, `key ${d.key_fingerprint}`) : null),
      el('td', {}, d.clinic, el('div', { className: 'sub' }, roomLabel(d.room))),
      el('td', {}, presence(d)),
      cfg, ...parts,
      el('td', {}, ago(d.last_seen)));
    tr.addEventListener('click', (e) => {
      if (/** @type {HTMLElement} */ (e.target).tagName !== 'A') location.hash = `#device/${encodeURIComponent(d.id)}`;
    });
    return tr;
  });
  /** @type {HTMLTableElement} */ ($('fleet-table')).tBodies[0].replaceChildren(...rows);
  $('fleet-empty').hidden = devices.length > 0;
  $('fleet-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

// ---------- one kiosk ----------

/**
 * @param {string} id
 * @param {[string, Node | string][]} pairs
 */
function facts(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

/** @param {string} id */
export async function renderDevice(id) {
  const { ok, data, status } = await request('GET', `/api/admin/devices/${encodeURIComponent(id)}`);
  $('device-id').textContent = id;
  if (!ok) {
    $('device-title').textContent = status === 404 ? 'No such kiosk' : 'Cannot load this kiosk';
    return;
  }
  const d = /** @type {DeviceDetail} */ (data);
  const s = d.state;
  $('device-title').textContent = `${d.clinic} · ${roomLabel(d.room)}`;
  const pill = $('device-presence');
  pill.textContent = s ? (s.presence === 'online' ? 'Online' : 'Offline') : 'Never seen';
  pill.className = `pill ${s ? (s.presence === 'online' ? 'ok' : 'bad') : ''}`;
  facts('device-state', [
    ['Kiosk', d.id], ['Enrolment', d.status], ['Key', d.key_fingerprint],
    ['Certificate until', certificateEnd(d.cert_expires_at)],
    ['Software', s ? s.software || '—' : '—'],
    ['Up for', s ? duration(s.uptime_secs) : '—'], ['Last report', ago(d.last_seen)],
    ['Last visit', s && s.last_visit ? `${when(s.last_visit.ended_at)}, ${duration(s.last_visit.duration_secs)}` : '—'],
    ['Last call\'s link', s && s.network ? linkWords(s.network) : '—'],
  ]);
  const h = s ? s.health : undefined;
  facts('device-health', [
    ['Camera', part(h?.camera)], ['Microphone', part(h?.microphone)],
    ['Speaker', part(h?.speaker)], ['TPM', part(h?.tpm)],
  ]);
  facts('device-os', osFacts(s?.os));
  const c = d.config;
  facts('device-config', [
    ['Applied', c.applied_version != null ? `v${c.applied_version}` : '—'],
    ['Sent', c.published ? `v${c.published.version} (rollout ${c.published.rollout_id}), ${ago(c.published.published_at)}` : 'nothing yet'],
    ['Refused', c.refusal ? el('span', { className: 'refusal' }, `v${c.refusal.version}: ${c.refusal.reason}`) : 'none'],
    ['Override', c.override ? el('code', {}, JSON.stringify(c.override)) : 'none'],
    ['Group', el('a', { href: `#config/${encodeURIComponent(c.group)}` }, c.group)],
  ]);
  const rows = d.commands.map((cmd) => {
    const r = cmd.result;
    return el('tr', {},
      el('td', {}, commandName(cmd.command), el('div', { className: 'sub' }, cmd.command_id)),
      el('td', {}, el('span', { className: `pill ${cmd.status === 'answered' ? 'ok' : cmd.status === 'expired' ? 'bad' : 'warn'}` }, cmd.status)),
      el('td', {}, ago(cmd.created_at)),
      el('td', {}, cmd.created_by),
      el('td', {}, r ? resultCell(cmd, r) : '—'));
  });
  const table = /** @type {HTMLTableElement} */ ($('commands-table'));
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
}

/**
 * A command's result: a hardware probe's report as tables, anything else as its words.
 * @param {{ command: Command, command_id: string }} cmd
 * @param {{ outcome: string, detail: string }} r
 */
function resultCell(cmd, r) {
  if (cmd.command.type === 'probe_hardware' && r.outcome === 'done') return probeReport(cmd.command_id, r.detail);
  return `${r.outcome}${r.detail ? ': ' + r.detail.slice(0, 300) : ''}`;
}

/**
 * Sends kiosk `id` a command (a button's `data-command`), then shows the page again.
 * @param {string} id
 * @param {string} type
 */
export async function sendCommand(id, type) {
  if (type === 'reboot' && !confirm(`Reboot ${id}? A visit in progress finishes first.`)) return;
  const command = /** @type {Command} */ (
    type === 'identify' ? { type, seconds: Number(input('identify-seconds').value) } : { type });
  $('command-error').textContent = '';
  const { ok, data } = await request('POST', `/api/admin/devices/${encodeURIComponent(id)}/commands`, { command });
  if (!ok) $('command-error').textContent = (data && data.error) || 'The command was not sent.';
  await renderDevice(id);
}
