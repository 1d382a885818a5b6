// @ts-check
// The admin console's Rollouts tab: each rollout's waves, its failed kiosks, and pause, resume
// and abort.

import { $, el, request } from './common.js';
import { ago } from './admin-format.js';

/** @typedef {import('./wire.js').RolloutInfo} RolloutInfo */
/** @typedef {import('./wire.js').RolloutStatus} RolloutStatus */
/** @typedef {import('./wire.js').WaveInfo} WaveInfo */

/** @type {Record<RolloutStatus, string>} */
const STATUS_CLASS = { running: 'warn', paused: 'warn', completed: 'ok', halted: 'bad', aborted: 'bad' };

/** Rollouts whose list of failed kiosks is open: it stays open across refreshes. */
const openRollouts = new Set();

/** @param {WaveInfo} w */
function waveRow(w) {
  const bar = el('div', { className: 'bar' });
  for (const k of /** @type {const} */ (['acked', 'pending', 'failed'])) {
    const span = el('span', { className: k, title: `${w[k]} ${k}` });
    span.style.width = `${(100 * w[k]) / Math.max(1, w.devices)}%`;
    bar.append(span);
  }
  return el('div', { className: 'wave' },
    el('span', {}, `Wave ${w.wave}`), bar,
    el('span', { className: 'counts' },
      `${w.acked} acked · ${w.pending} pending · ${w.failed} failed · ${w.not_sent} not sent`));
}

/**
 * The devices of a rollout that refused or timed out, loaded when its list is opened.
 * @param {RolloutInfo} r
 */
function failedList(r) {
  const details = /** @type {HTMLDetailsElement} */ (el('details', { className: 'failed-list' },
    el('summary', {}, `${r.failed} failed ${r.failed === 1 ? 'kiosk' : 'kiosks'}`)));
  const list = el('ul', {});
  details.append(list);
  const load = async () => {
    const { ok, data } = await request('GET', `/api/admin/rollouts/${r.id}`);
    if (!ok) return;
    const devices = /** @type {RolloutInfo} */ (data).devices || [];
    list.replaceChildren(...devices.filter((d) => ['refused', 'timed_out'].includes(d.outcome)).map((d) =>
      el('li', {}, el('a', { href: `#device/${encodeURIComponent(d.device_id)}` }, d.device_id),
        ` · wave ${d.wave} · ${d.outcome === 'refused' ? `refused: ${d.reason}` : 'did not answer in time'}`)));
  };
  details.addEventListener('toggle', () => {
    if (details.open) { openRollouts.add(r.id); load(); } else openRollouts.delete(r.id);
  });
  if (openRollouts.has(r.id)) { details.open = true; }
  return details;
}

export async function renderRollouts() {
  const { ok, data } = await request('GET', '/api/admin/rollouts');
  if (!ok) return;
  const rollouts = /** @type {RolloutInfo[]} */ (data);
  $('rollout-list').replaceChildren(...rollouts.map((r) => {
    /**
     * @param {string} label
     * @param {'pause' | 'resume' | 'abort'} action
     * @param {string} [cls]
     */
    const button = (label, action, cls) => {
      const b = el('button', { type: 'button', className: `quiet ${cls || ''}` }, label);
      b.addEventListener('click', () => changeRollout(r.id, action));
      return b;
    };
    const live = ['running', 'paused'].includes(r.status);
    const plan = r.canary.length ? `canary ${r.canary.join(', ')}` : `first wave ${r.first_wave_percent} %`;
    return el('div', { className: 'card rollout' },
      el('div', { className: 'rollout-head' },
        el('span', { className: 'title' }, `${r.group} · v${r.version}`),
        el('span', { className: `pill ${STATUS_CLASS[r.status]}` }, r.status),
        el('span', { className: 'muted' },
          `${r.kind} #${r.id} by ${r.created_by}, ${ago(r.created_at)} · ${plan} · halts past ${r.failure_threshold_percent} % failures`),
        el('span', { className: 'spacer' }),
        r.status === 'running' ? button('Pause', 'pause') : null,
        r.status === 'paused' ? button('Resume', 'resume') : null,
        live ? button('Abort', 'abort', 'danger') : null),
      el('div', { className: 'waves' }, ...r.waves.map(waveRow)),
      r.halt_reason ? el('div', { className: 'halt' }, `Halted: ${r.halt_reason}`) : null,
      r.failed > 0 ? failedList(r) : null);
  }));
  $('rollouts-empty').hidden = rollouts.length > 0;
  $('rollouts-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

/**
 * @param {number} id
 * @param {'pause' | 'resume' | 'abort'} action
 */
async function changeRollout(id, action) {
  if (action === 'abort' && !confirm(`Abort rollout ${id}? Kiosks keep what they applied.`)) return;
  const { ok, data } = await request('POST', `/api/admin/rollouts/${id}/${action}`);
  $('rollouts-error').textContent = ok ? '' : (data && data.error) || 'That did not work.';
  await renderRollouts();
}
