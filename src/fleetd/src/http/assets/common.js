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

/** Background calls in progress (polls): these do not count as activity for the idle time-out. */
let background = 0;

/**
 * Runs `poll` as a background refresh: its requests carry `X-Telekiosk-Background`, so an
 * unattended console still signs out after the idle time-out.
 * @template T
 * @param {() => Promise<T>} poll
 * @returns {Promise<T>}
 */
export async function inBackground(poll) {
  background += 1;
  try {
    return await poll();
  } finally {
    background -= 1;
  }
}

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
 * @param {'GET' | 'POST' | 'PUT' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {boolean} [retried] this is the one retry after a 429
 * @returns {Promise<Answer>}
 */
export async function request(method, path, body, retried = false) {
  /** @type {RequestInit} */
  /** @type {Record<string, string>} */
  const headers = {};
  if (background > 0) headers['X-Telekiosk-Background'] = '1';
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: { error: UNREACHABLE } };
  }
  // fleetd is shedding load (a sign-in flood, a busy moment): a read waits as long as it asks,
  // if that is short, and tries once more. A change is never repeated behind the user's back;
  // its 429 comes back with fleetd's message ("try again in N seconds").
  const wait = Number(res.headers.get('Retry-After'));
  if (res.status === 429 && method === 'GET' && wait > 0 && wait <= 10 && !retried) {
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return request(method, path, body, true);
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  // A wrong code while signing in is a 401 too, but no session has ended.
  const signingIn = path.startsWith('/api/login') || path.startsWith('/api/mfa/');
  if (res.status === 401 && !signingIn && unauthorized) {
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
 * What each `?signin_error=CODE` fleetd sends the browser back with after a sign-in through the
 * identity provider means, for the person signing in.
 * @type {Record<string, string>}
 */
const SIGNIN_REFUSALS = {
  off: 'Sign-in through your organisation is not set up on this server.',
  bad_host: 'This server was reached at an address it cannot use for sign-in through your organisation.',
  unreachable: 'Your identity provider could not be reached. Please try again in a moment, or tell your administrator.',
  provider_refused: 'Your identity provider did not sign you in.',
  invalid_token: 'The answer from your identity provider could not be verified. Please try again, or tell your administrator.',
  expired: 'That sign-in took too long. Please sign in again.',
  state_mismatch: 'That sign-in was not started in this browser, or was used already. Please sign in again.',
  no_role: 'Your identity provider gives you no telekiosk role: ask your administrator for one.',
  several_roles: 'Your identity provider gives you more than one telekiosk role: ask your administrator to leave one.',
  bad_clinics: 'The clinics your identity provider lists are not in a form telekiosk understands: tell your administrator.',
  no_mfa: 'Your identity provider did not record a second factor for this sign-in, which telekiosk requires.',
  no_username: 'Your identity provider gave no user name telekiosk can use: tell your administrator.',
  disabled: 'This account is disabled: ask an admin.',
  name_taken: 'An account with your user name already exists here and does not sign in through your identity provider: ask an admin.',
  failed: 'Signing in did not work. Please try again.',
};

/** Whether the refusal in this page's address has been read (it is said once). */
let refusalRead = false;

/**
 * Why the last sign-in through the identity provider was refused, in words (once; then empty).
 * It is taken out of the page's address the first time it is asked for, not when this module
 * loads.
 * @returns {string}
 */
export function signinRefusal() {
  if (refusalRead) return '';
  refusalRead = true;
  const params = new URLSearchParams(location.search);
  const code = params.get('signin_error');
  if (code === null) return '';
  params.delete('signin_error');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
  return SIGNIN_REFUSALS[code] || SIGNIN_REFUSALS.failed;
}

/**
 * Shows the "Sign in with …" button when fleetd offers sign-in through an identity provider; it
 * leaves for the provider, which sends the browser back to this console.
 */
async function offerIdentityProvider() {
  const { ok, data } = await request('GET', '/api/oidc');
  /** @type {import('./wire.js').OidcInfo | null} */
  const info = ok ? data : null;
  if (!info || !info.enabled) return;
  const which = location.pathname.startsWith('/admin') ? 'admin' : 'clinician';
  const button = $('oidc-button');
  button.textContent = info.label;
  button.addEventListener('click', () => location.assign(`/api/oidc/start?console=${which}`));
  $('oidc-signin').hidden = false;
}

/** The cards of the sign-in view, one shown at a time. */
const CARDS = ['signin-form', 'code-form', 'enrol-form', 'recovery-card'];

/** @param {string} name */
function card(name) {
  for (const c of CARDS) $(c).hidden = c !== name;
  const focus = { 'signin-form': 'username', 'code-form': 'code', 'enrol-form': 'enrol-code' }[name];
  if (focus) $(focus).focus();
}

/**
 * Wires the sign-in view, the same on both consoles: the password form (`#signin-form`), the
 * code step (`#code-form`), setting up two-step sign-in (`#enrol-form`: QR code, key as text,
 * a code to confirm) and the recovery codes shown once (`#recovery-card`); and the Sign out
 * button (`#signout`).
 * @param {{ signedIn: (me: Me) => void, signedOut: (message: string) => void }} on
 */
export function wireSession(on) {
  let pending = '';
  /** @param {Me} me */
  const done = (me) => { card('signin-form'); on.signedIn(me); };
  /**
   * Sends a form's request with its button disabled; shows a refusal in `errorId`.
   * @param {string} buttonId @param {string} errorId @param {string} path @param {unknown} body
   */
  const submit = async (buttonId, errorId, path, body) => {
    const button = /** @type {HTMLButtonElement} */ ($(buttonId));
    $(errorId).textContent = '';
    button.disabled = true;
    const answer = await request('POST', path, body);
    button.disabled = false;
    if (!answer.ok) {
      $(errorId).textContent = (answer.data && answer.data.error) || 'That did not work. Please try again.';
    }
    return answer;
  };
  /** @param {any} reply a `LoginReply` */
  const next = async (reply) => {
    if (reply.step === 'signed_in') done(reply.me);
    else if (reply.step === 'code') { pending = reply.pending; input('code').value = ''; card('code-form'); }
    else if (reply.step === 'enrol') await startEnrolment();
  };
  const startEnrolment = async () => {
    card('enrol-form');
    const { ok, data } = await submit('enrol-confirm', 'enrol-error', '/api/mfa/enrol', undefined);
    if (!ok) return;
    const qr = /** @type {HTMLImageElement} */ ($('enrol-qr'));
    qr.src = `data:image/svg+xml;base64,${btoa(data.qr_svg)}`;
    $('enrol-secret').textContent = data.secret;
    $('enrol-secret').dataset.uri = data.uri;
    input('enrol-code').value = '';
  };
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const password = input('password');
    const { ok, data } = await submit('signin', 'signin-error', '/api/login', {
      username: input('username').value.trim(), password: password.value,
    });
    if (ok) { password.value = ''; await next(data); } else password.select();
  });
  $('code-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const { ok, data } = await submit('code-submit', 'code-error', '/api/login/code', {
      pending, code: input('code').value.trim(),
    });
    if (ok) await next(data); else input('code').select();
  });
  $('code-back').addEventListener('click', () => card('signin-form'));
  $('enrol-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const { ok, data } = await submit('enrol-confirm', 'enrol-error', '/api/mfa/confirm', {
      code: input('enrol-code').value.trim(),
    });
    if (!ok) { input('enrol-code').select(); return; }
    const list = $('recovery-codes');
    list.replaceChildren(...data.recovery_codes.map((/** @type {string} */ c) => el('li', null, c)));
    card('recovery-card');
  });
  $('recovery-done').addEventListener('click', async () => {
    $('recovery-codes').replaceChildren();
    const me = await currentUser();
    if (me) done(me); else { card('signin-form'); on.signedOut('Please sign in again.'); }
  });
  offerIdentityProvider();
  $('signout').addEventListener('click', async () => {
    await request('POST', '/api/logout'); // signing out here whatever the answer
    card('signin-form');
    on.signedOut('');
  });
}
