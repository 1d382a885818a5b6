// @ts-check
// The admin console's Users tab: every console account, whether it is disabled, locked after
// failed sign-ins or without two-step sign-in yet, and what an admin can do to it: disable or
// enable, sign out everywhere, unlock, reset two-step sign-in, set a new password, remove.

import { $, el, request } from './common.js';

/** @typedef {import('./wire.js').UserInfo} UserInfo */

/**
 * Runs one action on a user and refreshes the list; a refusal is shown above the table.
 * @param {'POST' | 'PUT' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 */
async function act(method, path, body) {
  $('users-error').textContent = '';
  const { ok, data } = await request(method, path, body);
  if (!ok) $('users-error').textContent = (data && data.error) || 'That did not work.';
  await renderUsers();
}

/**
 * @param {string} label
 * @param {() => void} onClick
 * @param {string} [className]
 */
function button(label, onClick, className = '') {
  const b = el('button', { type: 'button', className }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** @param {UserInfo} u */
function row(u) {
  const base = `/api/admin/users/${encodeURIComponent(u.username)}`;
  const state = [];
  if (u.disabled) state.push('disabled');
  if (u.locked_until) state.push('locked');
  if (!u.mfa) state.push('no two-step sign-in yet');
  const actions = el('td', { className: 'actions' },
    u.disabled
      ? button('Enable', () => act('POST', `${base}/enable`))
      : button('Disable', () => act('POST', `${base}/disable`)),
    button('Sign out', () => act('POST', `${base}/signout`)),
    u.locked_until && button('Unlock', () => act('POST', `${base}/unlock`)),
    u.mfa && button('Reset two-step sign-in', () => {
      if (confirm(`Reset ${u.username}'s two-step sign-in? They set it up again at their next sign-in.`)) act('POST', `${base}/reset-mfa`);
    }),
    button('New password', () => {
      const password = prompt(`New password for ${u.username} (at least 12 characters):`);
      if (password) act('PUT', `${base}/password`, { password });
    }),
    button('Remove', () => {
      if (confirm(`Remove ${u.username}? This cannot be undone.`)) act('DELETE', base);
    }, 'danger'));
  return el('tr', {}, el('td', {}, u.username), el('td', {}, u.role),
    el('td', {}, state.join(', ') || 'active'), actions);
}

/** Fetches and shows the accounts. */
export async function renderUsers() {
  const { ok, data } = await request('GET', '/api/admin/users');
  if (!ok) { $('users-error').textContent = (data && data.error) || 'Cannot list users.'; return; }
  $('users-table').querySelector('tbody')?.replaceChildren(...(/** @type {UserInfo[]} */ (data)).map(row));
}
