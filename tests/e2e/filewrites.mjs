// Reads a file-write trace of a process tree (strace -f -ttt -y on the write family, see
// STRACE_ARGS) and says where bytes went: which files were opened for writing, how many bytes
// reached each class of path, and every write that touched a regular file outside the allowed
// state directory. Pure: the no-media-at-rest test runs it on the kiosk's trace; its own table
// test (filewrites.test.mjs) runs it on hand-written lines.

import path from 'node:path';

/** The tracer's options (before `-o FILE`): every syscall that can put bytes in a file. */
export const STRACE_ARGS = ['-f', '--seccomp-bpf', '-qq', '-ttt', '-s', '0', '-y', '-e',
  'trace=openat,open,creat,write,pwrite64,writev,pwritev,rename,renameat2,truncate,ftruncate,link,linkat,memfd_create'];

const WRITE_FLAGS = /\b(O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND)\b/;

/**
 * The class of a path as the tracer decorates a file descriptor (`pipe:[12]`, `/dev/null`,
 * `/memfd:x`, `/var/lib/telekiosk/state.json`): `state` (inside `stateDir`), `pipe`, `socket`,
 * `anon` (eventfd and other anonymous inodes), `memfd`, `device` (/dev, except /dev/shm),
 * `kernel` (/proc, /sys), `unknown` (no path known), or `outside`: a file anywhere else.
 */
export function classify(p, stateDir) {
  if (!p) return 'unknown';
  if (p.startsWith('pipe:')) return 'pipe';
  if (/^(socket|UNIX|TCP|TCPv6|UDP|UDPv6|NETLINK|UNIX-STREAM):/.test(p)) return 'socket';
  if (p.startsWith('anon_inode:')) return 'anon';
  if (p.startsWith('/memfd:')) return 'memfd';
  if (p.startsWith('/dev/shm/') || p === '/dev/shm') return 'outside';
  if (p.startsWith('/dev/')) return 'device';
  if (p.startsWith('/proc/') || p.startsWith('/sys/')) return 'kernel';
  const dir = path.resolve(stateDir);
  const abs = path.resolve(p);
  if (abs === dir || abs.startsWith(`${dir}/`)) return 'state';
  return 'outside';
}

/** `7</a/b>(deleted)` → `/a/b`; `AT_FDCWD</tmp>` → `/tmp`; nothing decorated → undefined. */
function decoration(s) {
  const m = /^[-\w]+<(.*)>(?:\(deleted\))?$/.exec(s.trim());
  return m ? m[1] : undefined;
}

/** The arguments of a call, split at top-level commas (strings and brackets kept whole). */
function splitArgs(args) {
  const out = [];
  let depth = 0; let quoted = false; let cur = '';
  for (let i = 0; i < args.length; i++) {
    const c = args[i];
    if (quoted) {
      cur += c;
      if (c === '\\') cur += args[++i] ?? '';
      else if (c === '"') quoted = false;
    } else if (c === '"') { quoted = true; cur += c; }
    else if ('[{<('.includes(c)) { depth++; cur += c; }
    else if (']}>)'.includes(c)) { depth--; cur += c; }
    else if (c === ',' && depth === 0) { out.push(cur.trim()); cur = ''; }
    else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** A quoted path argument resolved against its directory fd's decoration or `cwd`. */
function pathArg(arg, dirArg, cwd) {
  const m = /^"(.*)"$/.exec(arg || '');
  if (!m) return undefined;
  const p = m[1];
  if (p.startsWith('/')) return p;
  return path.resolve((dirArg && decoration(dirArg)) || cwd, p);
}

/**
 * Events of a trace, one per completed call: `{ pid, t, call, kind, path, bytes, ok }` with kind
 * `open` (opened for writing), `write`, `truncate`, `rename`, `link` or `memfd`; `path` is the
 * file written (for rename and link: the new name). Relative paths are resolved against `cwd`.
 */
export function parseTrace(text, { cwd = '/' } = {}) {
  const events = [];
  const pending = new Map(); // pid → the first half of an unfinished call
  for (const raw of text.split('\n')) {
    let m = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, pid, t] = m;
    let body = m[3];
    if (body.startsWith('---') || body.startsWith('+++')) continue;
    if (body.endsWith(' <unfinished ...>')) {
      pending.set(pid, body.slice(0, -' <unfinished ...>'.length));
      continue;
    }
    m = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body);
    if (m) {
      const first = pending.get(pid);
      pending.delete(pid);
      if (!first) continue;
      body = first + m[2];
    }
    const eq = body.lastIndexOf(') = ');
    const open = body.indexOf('(');
    if (eq < 0 || open < 0) continue;
    const call = body.slice(0, open);
    const args = splitArgs(body.slice(open + 1, eq));
    const result = body.slice(eq + 4);
    const rm = /^(-?\d+)(?:<(.*)>(?:\(deleted\))?)?/.exec(result);
    if (!rm) continue;
    const ret = Number(rm[1]);
    const ok = ret >= 0;
    const ev = { pid: Number(pid), t: Number(t), call, ok };
    switch (call) {
      case 'open': case 'openat': case 'creat': {
        const [dirArg, pathA, flags] = call === 'openat' ? args : [undefined, args[0], args[1]];
        if (call !== 'creat' && !WRITE_FLAGS.test(flags || '')) continue;
        events.push({ ...ev, kind: 'open', path: rm[2] || pathArg(pathA, dirArg, cwd), bytes: 0 });
        break;
      }
      case 'write': case 'pwrite64': case 'writev': case 'pwritev':
        events.push({ ...ev, kind: 'write', path: decoration(args[0]), bytes: ok ? ret : 0 });
        break;
      case 'ftruncate':
        events.push({ ...ev, kind: 'truncate', path: decoration(args[0]), bytes: 0 });
        break;
      case 'truncate':
        events.push({ ...ev, kind: 'truncate', path: pathArg(args[0], undefined, cwd), bytes: 0 });
        break;
      case 'rename': case 'link':
        events.push({ ...ev, kind: call, path: pathArg(args[1], undefined, cwd), bytes: 0 });
        break;
      case 'renameat': case 'renameat2': case 'linkat':
        events.push({ ...ev, kind: call.startsWith('rename') ? 'rename' : 'link', path: pathArg(args[3], args[2], cwd), bytes: 0 });
        break;
      case 'memfd_create':
        events.push({ ...ev, kind: 'memfd', path: rm[2], bytes: 0 });
        break;
      default:
    }
  }
  return events;
}

/**
 * Figures of the events between `from` and `to` (seconds, the trace's clock): bytes written by
 * path class, files opened for writing (by class, with their paths), and `violations`: every
 * successful call that put bytes in, created, truncated or renamed/linked onto a file outside
 * `stateDir` (or on an unknown path). Failed attempts are counted apart (`refused`).
 */
export function summarise(events, { stateDir, from = -Infinity, to = Infinity }) {
  const bytes = {}; const opened = {}; const violations = []; let refused = 0; let memfds = 0;
  for (const e of events) {
    if (e.t < from || e.t > to) continue;
    const cls = classify(e.path, stateDir);
    if (!e.ok) { refused++; continue; }
    if (e.kind === 'memfd') { memfds++; continue; }
    if (e.kind === 'write') bytes[cls] = (bytes[cls] || 0) + e.bytes;
    if (e.kind === 'open') (opened[cls] ||= new Set()).add(e.path);
    const touches = e.kind !== 'write' || e.bytes > 0;
    if (touches && (cls === 'outside' || cls === 'unknown')) violations.push({ ...e, cls });
  }
  const openedPaths = Object.fromEntries(Object.entries(opened).map(([k, v]) => [k, [...v].sort()]));
  return { bytes, opened: openedPaths, violations, refused, memfds };
}
