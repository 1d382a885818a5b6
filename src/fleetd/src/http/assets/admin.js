// telekiosk fleet admin console. Plain JavaScript, no build step, no external resources.
// Hash routes: #fleet, #device/ID, #config, #config/GROUP, #rollouts. Polls the admin API.
'use strict';

const $ = (id) => document.getElementById(id);
const VIEWS = ['signin', 'denied', 'fleet', 'device', 'config', 'rollouts'];
const REFRESH_MS = 3000;
let me = null;
let timer = null;
let editorGroup = null;

// ---------- helpers ----------

/** The last call's link at its worst, in plain words (what fleet admins compare across clinics). */
function linkWords(n) {
  const parts = [];
  if (n.worst_level) parts.push(n.worst_level === 'good' ? 'good' : n.worst_level === 'fair' ? 'fair at worst' : 'poor at worst');
  parts.push(`${n.rtt_ms} ms round trip`, `${(n.loss_permille / 10).toFixed(1)} % loss`);
  if (n.min_estimate_kbps) parts.push(`down to ${n.min_estimate_kbps} kb/s`);
  if (n.video_paused_secs) parts.push(`video paused ${n.video_paused_secs} s`);
  return parts.join(', ');
}

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: { error: 'fleetd cannot be reached. Check the network.' } };
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && path !== '/api/login') signedOut('Your session ended. Sign in again.');
  return { ok: res.ok, status: res.status, data };
}

// Builds an element: el('td', {className: 'x'}, 'text', child…).
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function when(unix) {
  if (!unix) return '—';
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function ago(unix) {
  if (!unix) return 'never';
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return when(unix);
}

function duration(secs) {
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

const PART = {
  ok: ['ok', 'OK'], missing: ['warn', 'Missing'], failed: ['bad', 'Failed'], unknown: ['', 'Unknown'],
};
function part(status) {
  const [cls, text] = PART[status] || PART.unknown;
  return el('span', { className: `dot ${cls}` }, text);
}

function presence(device) {
  const s = device.state;
  if (!s) return el('span', { className: 'dot' }, 'Never seen');
  return s.presence === 'online'
    ? el('span', { className: 'dot ok' }, 'Online')
    : el('span', { className: 'dot bad' }, 'Offline');
}

// "3" reads as "Room 3"; a named room ("Exam 1") is shown as it is.
function roomLabel(room) {
  return /^\d+[A-Za-z]?$/.test(room || '') ? `Room ${room}` : room;
}

// Parts reported missing or failed; "unknown" (no call yet to prove a part) is not a problem.
function healthIssues(s) {
  const bad = ['missing', 'failed'];
  return s ? ['camera', 'microphone', 'speaker', 'tpm'].filter((p) => bad.includes(s.health[p])).length : 0;
}

function commandName(c) {
  switch (c.type) {
    case 'identify': return `Identify (${c.seconds} s)`;
    case 'collect_diagnostics': return 'Diagnostics';
    case 'restart_app': return 'Restart app';
    case 'reboot': return 'Reboot';
    default: return c.type;
  }
}

// ---------- views and routing ----------

function show(name) {
  for (const v of VIEWS) $(`${v}-view`).hidden = v !== name;
  const signedIn = !['signin', 'denied'].includes(name);
  $('tabs').hidden = !signedIn;
  $('account').hidden = name === 'signin';
  const tab = name === 'device' ? 'fleet' : name;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function parseRoute() {
  const [view, ...rest] = location.hash.replace(/^#/, '').split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
  return VIEWS.includes(view) && !['signin', 'denied'].includes(view)
    ? { view, arg } : { view: 'fleet', arg: null };
}

async function route() {
  if (!me) return;
  if (me.role !== 'admin') { show('denied'); return; }
  const { view, arg } = parseRoute();
  show(view);
  clearInterval(timer);
  const refresh = { fleet: renderFleet, device: () => renderDevice(arg), rollouts: renderRollouts }[view];
  if (view === 'config') await renderConfig(arg);
  if (refresh) {
    await refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
}

// ---------- fleet ----------

async function renderFleet() {
  const { ok, data } = await api('GET', '/api/admin/fleet');
  if (!ok) return;
  const online = data.filter((d) => d.state && d.state.presence === 'online').length;
  const refused = data.filter((d) => d.state && d.state.config_refusal).length;
  const sick = data.filter((d) => d.state && healthIssues(d.state) > 0).length;
  const tile = (n, text, cls) => el('div', { className: `tile ${n ? cls : ''}` },
    el('div', { className: 'n' }, n), el('div', { className: 't' }, text));
  $('tiles').replaceChildren(
    tile(data.length, 'Kiosks', ''),
    tile(online, 'Online', 'good'),
    tile(data.length - online, 'Offline or never seen', 'bad'),
    tile(refused, 'Refused their config', 'bad'),
    tile(sick, 'With a hardware problem', 'bad'),
  );
  const byPlace = (a, b) => a.clinic.localeCompare(b.clinic) || a.room.localeCompare(b.room, undefined, { numeric: true });
  const rows = [...data].sort(byPlace).map((d) => {
    const s = d.state;
    const cfg = el('td', {},
      s ? `v${s.config_version}` : '—',
      d.published_version != null ? el('div', { className: 'sub' }, `sent v${d.published_version}`) : null,
      s && s.config_refusal ? el('div', { className: 'refusal' },
        `refused v${s.config_refusal.version}: ${s.config_refusal.reason}`) : null);
    const parts = ['camera', 'microphone', 'speaker', 'tpm'].map((p) => el('td', {}, part(s ? s.health[p] : 'unknown')));
    const tr = el('tr', { className: 'clickable' },
      el('td', {}, el('a', { href: `#device/${encodeURIComponent(d.id)}` }, d.id),
        el('div', { className: 'sub' }, d.status)),
      el('td', {}, d.clinic, el('div', { className: 'sub' }, roomLabel(d.room))),
      el('td', {}, presence(d)),
      cfg, ...parts,
      el('td', {}, ago(d.last_seen)));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'A') location.hash = `#device/${encodeURIComponent(d.id)}`;
    });
    return tr;
  });
  $('fleet-table').tBodies[0].replaceChildren(...rows);
  $('fleet-empty').hidden = data.length > 0;
  $('fleet-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

// ---------- device ----------

function facts(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

async function renderDevice(id) {
  const { ok, data, status } = await api('GET', `/api/admin/devices/${encodeURIComponent(id)}`);
  $('device-id').textContent = id;
  if (!ok) {
    $('device-title').textContent = status === 404 ? 'No such kiosk' : 'Cannot load this kiosk';
    return;
  }
  const s = data.state;
  $('device-title').textContent = `${data.clinic} · ${roomLabel(data.room)}`;
  const pill = $('device-presence');
  pill.textContent = s ? (s.presence === 'online' ? 'Online' : 'Offline') : 'Never seen';
  pill.className = `pill ${s ? (s.presence === 'online' ? 'ok' : 'bad') : ''}`;
  facts('device-state', [
    ['Kiosk', data.id], ['Enrolment', data.status], ['Software', s ? s.software || '—' : '—'],
    ['Up for', s ? duration(s.uptime_secs) : '—'], ['Last report', ago(data.last_seen)],
    ['Last visit', s && s.last_visit ? `${when(s.last_visit.ended_at)}, ${duration(s.last_visit.duration_secs)}` : '—'],
    ['Last call\'s link', s && s.network ? linkWords(s.network) : '—'],
  ]);
  const h = s ? s.health : {};
  facts('device-health', [
    ['Camera', part(h.camera)], ['Microphone', part(h.microphone)],
    ['Speaker', part(h.speaker)], ['TPM', part(h.tpm)],
  ]);
  const c = data.config;
  facts('device-config', [
    ['Applied', c.applied_version != null ? `v${c.applied_version}` : '—'],
    ['Sent', c.published ? `v${c.published.version} (rollout ${c.published.rollout_id}), ${ago(c.published.published_at)}` : 'nothing yet'],
    ['Refused', c.refusal ? el('span', { className: 'refusal' }, `v${c.refusal.version}: ${c.refusal.reason}`) : 'none'],
    ['Override', c.override ? el('code', {}, JSON.stringify(c.override)) : 'none'],
    ['Group', el('a', { href: `#config/${encodeURIComponent(c.group)}` }, c.group)],
  ]);
  const rows = data.commands.map((cmd) => {
    const r = cmd.result;
    return el('tr', {},
      el('td', {}, commandName(cmd.command), el('div', { className: 'sub' }, cmd.command_id)),
      el('td', {}, el('span', { className: `pill ${cmd.status === 'answered' ? 'ok' : cmd.status === 'expired' ? 'bad' : 'warn'}` }, cmd.status)),
      el('td', {}, ago(cmd.created_at)),
      el('td', {}, cmd.created_by),
      el('td', {}, r ? `${r.outcome}${r.detail ? ': ' + r.detail.slice(0, 300) : ''}` : '—'));
  });
  $('commands-table').tBodies[0].replaceChildren(...rows);
  $('commands-table').hidden = rows.length === 0;
}

async function sendCommand(type) {
  const { arg: id } = parseRoute();
  if (type === 'reboot' && !confirm(`Reboot ${id}? A visit in progress finishes first.`)) return;
  const command = type === 'identify' ? { type, seconds: Number($('identify-seconds').value) } : { type };
  $('command-error').textContent = '';
  const { ok, data } = await api('POST', `/api/devices/${encodeURIComponent(id)}/commands`, { command });
  if (!ok) $('command-error').textContent = (data && data.error) || 'The command was not sent.';
  await renderDevice(id);
}

// ---------- config ----------

async function renderConfig(group) {
  const { ok, data } = await api('GET', '/api/admin/groups');
  if (!ok) return;
  $('group-list').replaceChildren(...data.map((g) => {
    const a = el('a', { href: `#config/${encodeURIComponent(g.group)}` },
      el('span', {}, g.group), el('span', { className: 'muted' }, `${g.online}/${g.devices}`));
    if (g.group === group) a.setAttribute('aria-current', 'true');
    return el('li', {}, a);
  }));
  if (!group && data.length) { location.replace(`#config/${encodeURIComponent(data[0].group)}`); return; }
  $('editor').hidden = !group;
  if (!group) return;
  editorGroup = group;
  const res = await api('GET', `/api/admin/config/groups/${encodeURIComponent(group)}`);
  if (!res.ok) return;
  const g = res.data;
  $('editor-title').textContent = g.group;
  $('editor-meta').textContent = g.is_set
    ? `${g.devices} kiosks · set ${when(g.updated_at)} by ${g.updated_by}`
    : `${g.devices} kiosks · not set yet (defaults)`;
  $('editor-body').value = JSON.stringify(g.body, null, 2);
  $('editor-body').dataset.defaults = JSON.stringify(g.defaults, null, 2);
  for (const id of ['editor-error', 'editor-ok', 'ro-error']) $(id).textContent = '';
  $('editor-body').removeAttribute('aria-invalid');
}

async function saveConfig() {
  $('editor-error').textContent = '';
  $('editor-ok').textContent = '';
  let body;
  try {
    body = JSON.parse($('editor-body').value);
  } catch (e) {
    $('editor-body').setAttribute('aria-invalid', 'true');
    $('editor-error').textContent = `Not valid JSON: ${e.message}`;
    return false;
  }
  const { ok, data } = await api('PUT', `/api/admin/config/groups/${encodeURIComponent(editorGroup)}`, { body });
  if (!ok) {
    $('editor-body').setAttribute('aria-invalid', 'true');
    $('editor-error').textContent = (data && data.error) || 'Not saved.';
    return false;
  }
  $('editor-body').removeAttribute('aria-invalid');
  $('editor-ok').textContent = `Saved ${new Date().toLocaleTimeString()}. Kiosks get it with the next rollout.`;
  return true;
}

function rolloutRequest() {
  const canary = $('ro-canary').value.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    group: editorGroup, canary,
    first_wave_percent: Number($('ro-percent').value),
    failure_threshold_percent: Number($('ro-threshold').value),
  };
}

async function startRollout(path) {
  $('ro-error').textContent = '';
  if (path === '/api/admin/rollouts' && !(await saveConfig())) return;
  const { ok, data } = await api('POST', path, rolloutRequest());
  if (!ok) { $('ro-error').textContent = (data && data.error) || 'Not started.'; return; }
  location.hash = '#rollouts';
}

// ---------- rollouts ----------

function waveRow(w) {
  const bar = el('div', { className: 'bar' });
  for (const k of ['acked', 'pending', 'failed']) {
    const span = el('span', { className: k, title: `${w[k]} ${k}` });
    span.style.width = `${(100 * w[k]) / Math.max(1, w.devices)}%`;
    bar.append(span);
  }
  return el('div', { className: 'wave' },
    el('span', {}, `Wave ${w.wave}`), bar,
    el('span', { className: 'counts' },
      `${w.acked} acked · ${w.pending} pending · ${w.failed} failed · ${w.not_sent} not sent`));
}

const openRollouts = new Set();

// The devices of a rollout that refused or timed out, loaded when its list is opened.
function failedList(r) {
  const details = el('details', { className: 'failed-list' },
    el('summary', {}, `${r.failed} failed ${r.failed === 1 ? 'kiosk' : 'kiosks'}`));
  const list = el('ul', {});
  details.append(list);
  const load = async () => {
    const { ok, data } = await api('GET', `/api/admin/rollouts/${r.id}`);
    if (!ok) return;
    list.replaceChildren(...data.devices.filter((d) => ['refused', 'timed_out'].includes(d.outcome)).map((d) =>
      el('li', {}, el('a', { href: `#device/${encodeURIComponent(d.device_id)}` }, d.device_id),
        ` · wave ${d.wave} · ${d.outcome === 'refused' ? `refused: ${d.reason}` : 'did not answer in time'}`)));
  };
  details.addEventListener('toggle', () => {
    if (details.open) { openRollouts.add(r.id); load(); } else openRollouts.delete(r.id);
  });
  if (openRollouts.has(r.id)) { details.open = true; }
  return details;
}

const STATUS_CLASS = { running: 'warn', paused: 'warn', completed: 'ok', halted: 'bad', aborted: 'bad' };

async function renderRollouts() {
  const { ok, data } = await api('GET', '/api/admin/rollouts');
  if (!ok) return;
  $('rollout-list').replaceChildren(...data.map((r) => {
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
  $('rollouts-empty').hidden = data.length > 0;
  $('rollouts-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

async function changeRollout(id, action) {
  if (action === 'abort' && !confirm(`Abort rollout ${id}? Kiosks keep what they applied.`)) return;
  const { ok, data } = await api('POST', `/api/admin/rollouts/${id}/${action}`);
  $('rollouts-error').textContent = ok ? '' : (data && data.error) || 'That did not work.';
  await renderRollouts();
}

// ---------- sign-in ----------

function signedOut(message) {
  me = null;
  clearInterval(timer);
  show('signin');
  $('signin-error').textContent = message || '';
  $('username').focus();
}

function signedIn(user) {
  me = user;
  $('who').textContent = `${user.username} (${user.role})`;
  route();
}

async function signIn(event) {
  event.preventDefault();
  $('signin-error').textContent = '';
  $('signin').disabled = true;
  const { ok, data } = await api('POST', '/api/login', { username: $('username').value, password: $('password').value });
  $('signin').disabled = false;
  $('password').value = '';
  if (ok) signedIn(data);
  else $('signin-error').textContent = (data && data.error) || 'Signing in failed. Please try again.';
}

async function signOut() {
  await api('POST', '/api/logout');
  signedOut('');
}

document.addEventListener('DOMContentLoaded', async () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('editor-save').addEventListener('click', saveConfig);
  $('editor-defaults').addEventListener('click', () => { $('editor-body').value = $('editor-body').dataset.defaults || '{}'; });
  $('ro-start').addEventListener('click', () => startRollout('/api/admin/rollouts'));
  $('ro-rollback').addEventListener('click', () => startRollout('/api/admin/rollback'));
  for (const b of document.querySelectorAll('[data-command]')) {
    b.addEventListener('click', () => sendCommand(b.dataset.command));
  }
  window.addEventListener('hashchange', route);
  const { ok, data } = await api('GET', '/api/me');
  if (ok) signedIn(data); else signedOut('');
});
