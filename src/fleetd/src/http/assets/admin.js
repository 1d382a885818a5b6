// @ts-check
// telekiosk fleet admin console. ES modules, no build step, no external resources.
// Hash routes: #fleet, #device/ID, #config, #config/GROUP, #rollouts, #users. Polls the admin API
// (/api/admin/…); each tab is a module: admin-fleet.js, admin-config.js, admin-rollouts.js, admin-users.js.

import { $, currentUser, signinRefusal, inBackground, onUnauthorized, wireSession } from './common.js';
import { renderDevice, renderFleet, sendCommand } from './admin-fleet.js';
import { renderConfig, wireConfig } from './admin-config.js';
import { renderRollouts } from './admin-rollouts.js';
import { renderUsers } from './admin-users.js';

/** @typedef {import('./wire.js').Me} Me */
/** @typedef {'signin' | 'denied' | 'fleet' | 'device' | 'config' | 'rollouts' | 'users'} View */

/** @type {View[]} */
const VIEWS = ['signin', 'denied', 'fleet', 'device', 'config', 'rollouts', 'users'];
const REFRESH_MS = 3000;

/**
 * The views each role may open, after fleetd's permission table: only a fleet admin manages
 * devices, config and rollouts; fleetd refuses the others' requests in any case.
 * @type {Record<Me['role'], View[]>}
 */
const ROLE_VIEWS = {
  admin: ['fleet', 'device', 'config', 'rollouts'],
  clinician: [],
  auditor: [],
  technician: [],
};
/** @type {Me | null} */
let me = null;
/** @type {ReturnType<typeof setInterval> | undefined} */
let timer;

// ---------- views and routing ----------

/** @param {View} name */
function show(name) {
  for (const v of VIEWS) $(`${v}-view`).hidden = v !== name;
  const signedIn = !['signin', 'denied'].includes(name);
  $('tabs').hidden = !signedIn;
  $('account').hidden = name === 'signin';
  const tab = name === 'device' ? 'fleet' : name;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (/** @type {HTMLElement} */ (a).dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** @returns {{ view: View, arg: string | null }} the view the address names, and its argument */
function parseRoute() {
  const [view, ...rest] = location.hash.replace(/^#/, '').split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
  const known = /** @type {View | undefined} */ (VIEWS.find((v) => v === view));
  return known && !['signin', 'denied'].includes(known)
    ? { view: known, arg } : { view: 'fleet', arg: null };
}

async function route() {
  if (!me) return;
  const allowed = ROLE_VIEWS[me.role] || [];
  for (const a of document.querySelectorAll('#tabs a')) {
    const tab = /** @type {HTMLElement} */ (a);
    tab.hidden = !allowed.includes(/** @type {View} */ (tab.dataset.tab));
  }
  const { view, arg } = parseRoute();
  if (!allowed.includes(view)) {
    $('denied-role').textContent = `You are signed in as ${me.role === 'admin' ? 'an admin' : `a ${me.role}`}`;
    show('denied');
    return;
  }
  show(view);
  clearInterval(timer);
  /** @type {Partial<Record<View, () => Promise<void>>>} */
  const refreshers = { fleet: renderFleet, device: () => renderDevice(arg || ''), rollouts: renderRollouts,
    users: renderUsers };
  const refresh = refreshers[view];
  if (view === 'config') await renderConfig(arg);
  if (refresh) {
    await refresh();
    timer = setInterval(() => inBackground(refresh), REFRESH_MS);
  }
}

// ---------- sign-in ----------

/** @param {string} message why, on the sign-in form; empty for none */
function signedOut(message) {
  me = null;
  clearInterval(timer);
  show('signin');
  $('signin-error').textContent = message || signinRefusal();
  $('username').focus();
}

/** @param {Me} user */
function signedIn(user) {
  me = user;
  $('who').textContent = `${user.username} (${user.role})`;
  route();
}

// ---------- wiring ----------

onUnauthorized(signedOut);
wireSession({ signedIn, signedOut });
wireConfig();
for (const b of document.querySelectorAll('[data-command]')) {
  const type = /** @type {HTMLElement} */ (b).dataset.command || '';
  b.addEventListener('click', () => sendCommand(parseRoute().arg || '', type));
}
window.addEventListener('hashchange', route);

const user = await currentUser();
if (user) signedIn(user); else signedOut('');
