// @ts-check
// The admin console's Config tab: the clinics, the editor of a clinic's config body, and starting
// a rollout (or a rollback) of it.

import { $, el, input, request } from './common.js';
import { when } from './admin-format.js';

/** @typedef {import('./wire.js').GroupInfo} GroupInfo */
/** @typedef {import('./wire.js').GroupConfig} GroupConfig */
/** @typedef {import('./wire.js').NewRollout} NewRollout */

/** @type {string | null} the clinic in the editor */
let editorGroup = null;

/**
 * The list of clinics, and `group`'s config in the editor (the first clinic when none is named).
 * @param {string | null} group
 */
export async function renderConfig(group) {
  const { ok, data } = await request('GET', '/api/admin/groups');
  if (!ok) return;
  const groups = /** @type {GroupInfo[]} */ (data);
  $('group-list').replaceChildren(...groups.map((g) => {
    const a = el('a', { href: `#config/${encodeURIComponent(g.group)}` },
      el('span', {}, g.group), el('span', { className: 'muted' }, `${g.online}/${g.devices}`));
    if (g.group === group) a.setAttribute('aria-current', 'true');
    return el('li', {}, a);
  }));
  if (!group && groups.length) { location.replace(`#config/${encodeURIComponent(groups[0].group)}`); return; }
  $('editor').hidden = !group;
  if (!group) return;
  editorGroup = group;
  const res = await request('GET', `/api/admin/config/groups/${encodeURIComponent(group)}`);
  if (!res.ok) return;
  const g = /** @type {GroupConfig} */ (res.data);
  const body = input('editor-body');
  $('editor-title').textContent = g.group;
  $('editor-meta').textContent = g.is_set
    ? `${g.devices} kiosks · set ${when(g.updated_at)} by ${g.updated_by}`
    : `${g.devices} kiosks · not set yet (defaults)`;
  body.value = JSON.stringify(g.body, null, 2);
  body.dataset.defaults = JSON.stringify(g.defaults, null, 2);
  for (const id of ['editor-error', 'editor-ok', 'ro-error']) $(id).textContent = '';
  body.removeAttribute('aria-invalid');
}

/**
 * Stores the editor's body as the clinic's config; says why not when fleetd refuses it.
 * @returns {Promise<boolean>} whether it was stored
 */
async function saveConfig() {
  const editor = input('editor-body');
  $('editor-error').textContent = '';
  $('editor-ok').textContent = '';
  let body;
  try {
    body = JSON.parse(editor.value);
  } catch (e) {
    editor.setAttribute('aria-invalid', 'true');
    $('editor-error').textContent = `Not valid JSON: ${/** @type {Error} */ (e).message}`;
    return false;
  }
  const path = `/api/admin/config/groups/${encodeURIComponent(editorGroup || '')}`;
  const { ok, data } = await request('PUT', path, { body });
  if (!ok) {
    editor.setAttribute('aria-invalid', 'true');
    $('editor-error').textContent = (data && data.error) || 'Not saved.';
    return false;
  }
  editor.removeAttribute('aria-invalid');
  $('editor-ok').textContent = `Saved ${new Date().toLocaleTimeString()}. Kiosks get it with the next rollout.`;
  return true;
}

/** @returns {NewRollout} */
function rolloutRequest() {
  const canary = input('ro-canary').value.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    group: editorGroup || '', canary,
    first_wave_percent: Number(input('ro-percent').value),
    failure_threshold_percent: Number(input('ro-threshold').value),
  };
}

/**
 * Saves the body and rolls it out (`/api/admin/rollouts`), or rolls back to the previous
 * version (`/api/admin/rollback`); then shows the Rollouts tab.
 * @param {string} path
 */
async function startRollout(path) {
  $('ro-error').textContent = '';
  if (path === '/api/admin/rollouts' && !(await saveConfig())) return;
  const { ok, data } = await request('POST', path, rolloutRequest());
  if (!ok) { $('ro-error').textContent = (data && data.error) || 'Not started.'; return; }
  location.hash = '#rollouts';
}

/** Wires the editor's buttons. */
export function wireConfig() {
  $('editor-save').addEventListener('click', saveConfig);
  $('editor-defaults').addEventListener('click', () => {
    const body = input('editor-body');
    body.value = body.dataset.defaults || '{}';
  });
  $('ro-start').addEventListener('click', () => startRollout('/api/admin/rollouts'));
  $('ro-rollback').addEventListener('click', () => startRollout('/api/admin/rollback'));
}
