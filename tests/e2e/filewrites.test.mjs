// Table tests of the file-write trace reader the no-media-at-rest test relies on (no parts
// needed: hand-written trace lines in the tracer's format).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, parseTrace, summarise } from './filewrites.mjs';

const STATE = '/var/lib/tk-state';

describe('file-write trace reader', () => {
  it('classifies each kind of path', () => {
    const cases = [
      ['pipe:[304286]', 'pipe'],
      ['socket:[1234]', 'socket'],
      ['UNIX-STREAM:[99]', 'socket'],
      ['anon_inode:[eventfd]', 'anon'],
      ['/memfd:gst (deleted)', 'memfd'],
      ['/dev/null', 'device'],
      ['/dev/snd/pcmC0D0p', 'device'],
      ['/dev/shm/orcexec.x', 'outside'],
      ['/proc/self/oom_score_adj', 'kernel'],
      [`${STATE}/config.json`, 'state'],
      [`${STATE}/sub/../seen.json`, 'state'],
      [STATE, 'state'],
      [`${STATE}-other/x`, 'outside'],
      ['/root/orcexec.abc', 'outside'],
      ['/tmp/visit.raw', 'outside'],
      [undefined, 'unknown'],
    ];
    for (const [p, cls] of cases) assert.equal(classify(p, STATE), cls, String(p));
  });

  it('reads each call of the write family', () => {
    const trace = [
      `10  100.000001 openat(AT_FDCWD</work>, "${STATE}/seen.json.tmp", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600) = 7<${STATE}/seen.json.tmp>`,
      `10  100.000002 write(7<${STATE}/seen.json.tmp>, ""..., 120) = 120`,
      `10  100.000003 renameat2(AT_FDCWD</work>, "${STATE}/seen.json.tmp", AT_FDCWD</work>, "${STATE}/seen.json", RENAME_NOREPLACE) = 0`,
      '10  100.000004 openat(AT_FDCWD</work>, "/etc/ssl/certs/ca.pem", O_RDONLY|O_CLOEXEC) = 8</etc/ssl/certs/ca.pem>',
      '11  100.000005 write(1<pipe:[55]>, ""..., 80) = 80',
      '11  100.000006 writev(12<socket:[66]>, [...], 2) = 1500',
      '12  100.000007 write(5<anon_inode:[eventfd]>, ""..., 8) = 8',
      '12  100.000008 memfd_create(""..., MFD_CLOEXEC) = 9</memfd:x>(deleted)',
      '12  100.000009 write(9</memfd:x>(deleted), ""..., 3) = 3',
      '13  100.000010 openat(AT_FDCWD</work>, "/root/orcexec.U91tlf", O_RDWR|O_CREAT|O_EXCL, 0600) = 14</root/orcexec.U91tlf>',
      '13  100.000011 ftruncate(14</root/orcexec.U91tlf>, 4096) = 0',
      '13  100.000012 pwrite64(15</tmp/a.raw>, ""..., 4096, 0 <unfinished ...>',
      '14  100.000013 write(2<pipe:[56]>, ""..., 10) = 10',
      '13  100.000014 <... pwrite64 resumed>) = 4096',
      '13  100.000015 openat(AT_FDCWD</work>, "rel/x", O_WRONLY|O_CREAT, 0644) = -1 EACCES (Permission denied)',
      '13  100.000016 truncate("rel/y", 1) = 0',
      '13  100.000017 linkat(AT_FDCWD</work>, "/tmp/a", AT_FDCWD</work>, "b", 0) = 0',
      '13  100.000018 --- SIGCHLD {si_signo=SIGCHLD} ---',
      '13  100.000019 write(3</dev/null>, ""..., 5) = 5',
      '13  100.000020 write(16</home/k/empty>, ""..., 0) = 0',
    ].join('\n');
    const events = parseTrace(trace, { cwd: '/cwd' });
    const got = events.map((e) => [e.kind, e.path, e.bytes, e.ok]);
    assert.deepEqual(got, [
      ['open', `${STATE}/seen.json.tmp`, 0, true],
      ['write', `${STATE}/seen.json.tmp`, 120, true],
      ['rename', `${STATE}/seen.json`, 0, true],
      ['write', 'pipe:[55]', 80, true],
      ['write', 'socket:[66]', 1500, true],
      ['write', 'anon_inode:[eventfd]', 8, true],
      ['memfd', '/memfd:x', 0, true],
      ['write', '/memfd:x', 3, true],
      ['open', '/root/orcexec.U91tlf', 0, true],
      ['truncate', '/root/orcexec.U91tlf', 0, true],
      ['write', 'pipe:[56]', 10, true],
      ['write', '/tmp/a.raw', 4096, true],
      ['open', '/work/rel/x', 0, false],
      ['truncate', '/cwd/rel/y', 0, true],
      ['link', '/work/b', 0, true],
      ['write', '/dev/null', 5, true],
      ['write', '/home/k/empty', 0, true],
    ]);

    const all = summarise(events, { stateDir: STATE });
    assert.deepEqual(all.bytes, { state: 120, pipe: 90, socket: 1500, anon: 8, memfd: 3, outside: 4096, device: 5 });
    assert.deepEqual(all.opened, { state: [`${STATE}/seen.json.tmp`], outside: ['/root/orcexec.U91tlf'] });
    assert.deepEqual(all.violations.map((v) => [v.kind, v.path]), [
      ['open', '/root/orcexec.U91tlf'], ['truncate', '/root/orcexec.U91tlf'], ['write', '/tmp/a.raw'],
      ['truncate', '/cwd/rel/y'], ['link', '/work/b'],
    ]);
    assert.equal(all.refused, 1);
    assert.equal(all.memfds, 1);

    // A window of the trace: only the state dir's writes before the orc file.
    const early = summarise(events, { stateDir: STATE, from: 100, to: 100.0000035 });
    assert.deepEqual(early.bytes, { state: 120 });
    assert.deepEqual(early.violations, []);
  });
});
