// @ts-check
// The admin console's Rollouts tab: config rollouts and OS update rollouts, each with its
// waves, its failed kiosks, and pause, resume and abort. Both go through the same engine, so
// both draw the same card.

import { $, el, request } from './common.js';
import { ago } from './admin-format.js';

/** @typedef {import('./wire.js').RolloutInfo} RolloutInfo */
/** @typedef {import('./wire.js').UpdateInfo} UpdateInfo */
/** @typedef {'rollouts' | 'updates'} Kind */
/** @typedef {import('./wire.js').RolloutStatus} RolloutStatus */
/** @typedef {import('./wire.js').WaveInfo} WaveInfo */

/** @type {Record<RolloutStatus, string>} */
const STATUS_CLASS = { running: 'warn', paused: 'warn', completed: 'ok', halted: 'bad', aborted: 'bad' };

/** Rollouts (`rollouts/ID`, `updates/ID`) whose list of failed kiosks is open: it stays open across refreshes. */
const openRollouts = new Set();

/**
 * @param {WaveInfo} w
 * @param {string} [acked] what an acknowledged device is called
 */
function waveRow(w, acked = 'acked') {
  const bar = el('div', { className: 'bar' });
  for (const k of /** @type {const} */ (['acked', 'pending', 'failed'])) {
    const span = el('span', { className: k, title: `${w[k]} ${k}` });
    span.style.width = `${(100 * w[k]) / Math.max(1, w.devices)}%`;
    bar.append(span);
  }
  return el('div', { className: 'wave' },
    el('span', {}, `Wave ${w.wave}`), bar,
    el('span', { className: 'counts' },
      `${w.acked} ${acked} · ${w.pending} pending · ${w.failed} failed · ${w.not_sent} not sent`));
}

/**
 * The devices of a rollout that refused (or failed to update) or timed out, loaded when its
 * list is opened.
 * @param {Kind} kind
 * @param {RolloutInfo | UpdateInfo} r
 */
function failedList(kind, r) {
  const key = `${kind}/${r.id}`;
  const details = /** @type {HTMLDetailsElement} */ (el('details', { className: 'failed-list' },
    el('summary', {}, `${r.failed} failed ${r.failed === 1 ? 'kiosk' : 'kiosks'}`)));
  const list = el('ul', {});
  details.append(list);
  const refused = kind === 'updates' ? 'did not update' : 'refused';
  const load = async () => {
    const { ok, data } = await request('GET', `/api/admin/${key}`);
    if (!ok) return;
    const devices = /** @type {RolloutInfo} */ (data).devices || [];
    list.replaceChildren(...devices.filter((d) => ['refused', 'timed_out'].includes(d.outcome)).map((d) =>
      el('li', {}, el('a', { href: `#device/${encodeURIComponent(d.device_id)}` }, d.device_id),
        ` · wave ${d.wave} · ${d.outcome === 'refused' ? `${refused}: ${d.reason}` : 'did not answer in time'}`)));
  };
  details.addEventListener('toggle', () => {
    if (details.open) { openRollouts.add(key); load(); } else openRollouts.delete(key);
  });
  if (openRollouts.has(key)) { details.open = true; }
  return details;
}

/**
 * One rollout's card.
 * @param {Kind} kind
 * @param {RolloutInfo | UpdateInfo} r
 */
function card(kind, r) {
  /**
   * @param {string} label
   * @param {'pause' | 'resume' | 'abort'} action
   * @param {string} [cls]
   */
  const button = (label, action, cls) => {
    const b = el('button', { type: 'button', className: `quiet ${cls || ''}` }, label);
    b.addEventListener('click', () => changeRollout(kind, r.id, action));
    return b;
  };
  const live = ['running', 'paused'].includes(r.status);
  const plan = r.canary.length ? `canary ${r.canary.join(', ')}` : `first wave ${r.first_wave_percent} %`;
  const update = kind === 'updates' ? /** @type {UpdateInfo} */ (r) : null;
  const title = update ? `${r.group} · OS ${update.version}` : `${r.group} · v${r.version}`;
  const what = update
    ? `update #${r.id} by ${r.created_by}, ${ago(r.created_at)} · ${plan} · halts past ${r.failure_threshold_percent} % failures · `
      + `reboots ${update.reboot_in_opening_hours ? 'outside visits' : 'outside opening hours'} · ${update.health_timeout_secs} s to become healthy`
    : `${/** @type {RolloutInfo} */ (r).kind} #${r.id} by ${r.created_by}, ${ago(r.created_at)} · ${plan} · halts past ${r.failure_threshold_percent} % failures`;
  return el('div', { className: 'card rollout' },
    el('div', { className: 'rollout-head' },
      el('span', { className: 'title' }, title),
      el('span', { className: `pill ${STATUS_CLASS[r.status]}` }, r.status),
      el('span', { className: 'muted' }, what),
      el('span', { className: 'spacer' }),
      r.status === 'running' ? button('Pause', 'pause') : null,
      r.status === 'paused' ? button('Resume', 'resume') : null,
      live ? button('Abort', 'abort', 'danger') : null),
    el('div', { className: 'waves' }, ...r.waves.map((w) => waveRow(w, update ? 'updated' : 'acked'))),
    r.halt_reason ? el('div', { className: 'halt' }, `Halted: ${r.halt_reason}`) : null,
    r.failed > 0 ? failedList(kind, r) : null);
}

export async function renderRollouts() {
  const [rollouts, updates] = await Promise.all(
    [request('GET', '/api/admin/rollouts'), request('GET', '/api/admin/updates')]);
  if (!rollouts.ok || !updates.ok) return;
  const list = /** @type {RolloutInfo[]} */ (rollouts.data);
  const os = /** @type {UpdateInfo[]} */ (updates.data);
  $('rollout-list').replaceChildren(...list.map((r) => card('rollouts', r)));
  $('update-list').replaceChildren(...os.map((u) => card('updates', u)));
  $('rollouts-empty').hidden = list.length > 0;
  $('updates-empty').hidden = os.length > 0;
  $('rollouts-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

/**
 * @param {Kind} kind
 * @param {number} id
 * @param {'pause' | 'resume' | 'abort'} action
 */
async function changeRollout(kind, id, action) {
  const kept = kind === 'updates' ? 'Kiosks that installed it keep it.' : 'Kiosks keep what they applied.';
  if (action === 'abort' && !confirm(`Abort ${kind === 'updates' ? 'update' : 'rollout'} ${id}? ${kept}`)) return;
  const { ok, data } = await request('POST', `/api/admin/${kind}/${id}/${action}`);
  $('rollouts-error').textContent = ok ? '' : (data && data.error) || 'That did not work.';
  await renderRollouts();
}
