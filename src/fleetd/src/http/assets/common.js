// @ts-check
// What both consoles share: element look-up and building, the API helper, the sign-in form and
// Sign out button, and the words for a room. ES module; no build step, no external resources.

/** @typedef {import('./wire.js').Me} Me */

/**
 * The element with this id (every id the consoles use is in their HTML).
 * @param {string} id
 * @returns {HTMLElement}
 */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * The input (or textarea) with this id.
 * @param {string} id
 * @returns {HTMLInputElement}
 */
export const input = (id) => /** @type {HTMLInputElement} */ ($(id));

/**
 * Builds an element: `el('td', { className: 'x' }, 'text', child…)`. Children that are null,
 * undefined or false are left out; text is never parsed as HTML.
 * @param {string} tag
 * @param {object | null} props
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/**
 * "3" reads as "Room 3"; a named room ("Exam 1") is shown as it is.
 * @param {string} room
 */
export function roomLabel(room) {
  return /^\d+[A-Za-z]?$/.test(room || '') ? `Room ${room}` : room;
}

// ---------- the API ----------

const UNREACHABLE = 'The server cannot be reached. Check the network and try again.';

/** @type {((message: string) => void) | null} */
let unauthorized = null;

/**
 * Has `handler` called when a request other than sign-in is refused for want of a session
 * (the session timed out, or was signed out elsewhere).
 * @param {(message: string) => void} handler
 */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/**
 * @typedef {object} Answer
 * @property {boolean} ok a 2xx status
 * @property {number} status the HTTP status; 0 when fleetd could not be reached
 * @property {any} data the JSON body (an `ApiError` when refused), null when there is none
 */

/**
 * One API call: JSON in, JSON out, with the session cookie. Never throws: a network failure is
 * status 0 with an `error` in plain words.
 * @param {'GET' | 'POST' | 'PUT'} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<Answer>}
 */
export async function request(method, path, body) {
  /** @type {RequestInit} */
  const init = { method, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: { error: UNREACHABLE } };
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && path !== '/api/login' && unauthorized) {
    unauthorized('Your session has ended. Please sign in again.');
  }
  return { ok: res.ok, status: res.status, data };
}

// ---------- signing in and out ----------

/**
 * Who is signed in, or null (no session, or fleetd not reachable yet).
 * @returns {Promise<Me | null>}
 */
export async function currentUser() {
  const { status, data } = await request('GET', '/api/me');
  return status === 200 ? data : null;
}

/**
 * Wires the sign-in form (`#signin-form`: `#username`, `#password`, `#signin`, `#signin-error`)
 * and the Sign out button (`#signout`), the same on both consoles.
 * @param {{ signedIn: (me: Me) => void, signedOut: (message: string) => void }} on
 */
export function wireSession(on) {
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = /** @type {HTMLButtonElement} */ ($('signin'));
    const password = input('password');
    $('signin-error').textContent = '';
    button.disabled = true;
    const { status, data } = await request('POST', '/api/login', {
      username: input('username').value.trim(), password: password.value,
    });
    button.disabled = false;
    if (status === 200) {
      password.value = '';
      on.signedIn(data);
    } else {
      $('signin-error').textContent = (data && data.error) || 'Signing in failed. Please try again.';
      password.select();
    }
  });
  $('signout').addEventListener('click', async () => {
    await request('POST', '/api/logout'); // signing out here whatever the answer
    on.signedOut('');
  });
}
