// The QMP client, the QEMU process wrapper, accelerator detection and the QEMU command line, against real
// QEMU with no guest: `-M none`, and `-M q35 -S` (a machine that can be stopped and continued).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DoppelError, InvalidArgumentError, NotFoundError, UnavailableError } from '../shared/src/errors.js';
import { QmpClient, QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError } from '../agent/src/drivers/qemu/qmp.js';
import { QemuProcess, QemuStartError, adopt } from '../agent/src/drivers/qemu/qemu-process.js';
import { ACCEL_ENV, detectAccel } from '../agent/src/drivers/qemu/accel.js';
import { buildQemuArgs, diskNodeName, type QemuMachineSpec } from '../agent/src/drivers/qemu/command-line.js';

const root = mkdtempSync(join(tmpdir(), 'doppel-qmp-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const path = (name: string): string => join(root, `${n++}-${name}`);

const NONE = ['-M', 'none', '-nodefaults', '-display', 'none'];
const Q35_PAUSED = ['-M', 'q35', '-accel', 'tcg', '-m', '64', '-nodefaults', '-display', 'none', '-S'];

async function withQemu(args: string[], fn: (q: QemuProcess) => Promise<void>): Promise<void> {
  const q = await QemuProcess.start({ args });
  try {
    await fn(q);
  } finally {
    q.kill('SIGKILL');
    await q.exited;
  }
}

/** A unix socket server that runs `onConn` for each client: a stand-in for a broken or hostile QMP peer. */
async function fakeServer(onConn: (s: Socket) => void): Promise<{ path: string; server: Server }> {
  const p = path('fake.sock');
  const server = createServer(onConn);
  await new Promise<void>((resolve) => server.listen(p, resolve));
  return { path: p, server };
}

const GREETING = JSON.stringify({ QMP: { version: { qemu: { major: 10, minor: 0, micro: 2 }, package: 'fake' }, capabilities: [] } }) + '\r\n';

/** Greets, answers qmp_capabilities, then hands each later request to `onCommand`. */
function fakeQmp(onCommand: (s: Socket, msg: { execute: string; id?: unknown }) => void): (s: Socket) => void {
  return (s) => {
    s.write(GREETING);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; id?: unknown };
        buf = buf.slice(nl + 1);
        if (msg.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: msg.id }) + '\r\n');
        else onCommand(s, msg);
      }
    });
    s.on('error', () => undefined);
  };
}

test('greeting and capabilities: the client records QEMU 10 and negotiates', async () => {
  await withQemu(NONE, async (q) => {
    assert.equal(q.qmp.version.major, 10);
    assert.ok(q.qmp.version.package.length > 0);
    assert.ok(q.qmp.capabilities.includes('oob'), `capabilities ${q.qmp.capabilities.join(',')}`);
    const v = await q.qmp.execute<{ qemu: { major: number } }>('query-version');
    assert.equal(v.qemu.major, 10);
    const s = await q.qmp.queryStatus();
    // -M none has no vCPUs and runs at once.
    assert.equal(s.status, 'running');
  });
});

test('q35 -S: prelaunch, cont → running with RESUME, stop → paused with STOP', async () => {
  await withQemu(Q35_PAUSED, async (q) => {
    assert.deepEqual(await q.qmp.queryStatus(), { status: 'prelaunch', running: false });
    // QEMU sends RESUME before cont's reply: waiting from a sequence number taken first catches it.
    const before = q.qmp.lastEventSeq;
    await q.qmp.execute('cont');
    const resume = await q.qmp.waitForEvent('RESUME', { afterSeq: before, timeoutMs: 5000 });
    assert.ok(resume.seq > before);
    assert.ok(resume.timestampUs > 0);
    assert.deepEqual(await q.qmp.queryStatus(), { status: 'running', running: true });

    const stopped = q.qmp.waitForEvent('STOP', { timeoutMs: 5000 });
    await q.qmp.execute('stop');
    await stopped;
    assert.deepEqual(await q.qmp.queryStatus(), { status: 'paused', running: false });
    await assert.rejects(q.qmp.waitForEvent('RESUME', { timeoutMs: 50 }), (e: Error) => e.name === 'DeadlineExceededError' && /RESUME/.test(e.message));
  });
});

test('an unknown command is a QmpError with its class and desc; the session stays usable', async () => {
  await withQemu(NONE, async (q) => {
    const err = await q.qmp.execute('no-such-command').then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof QmpError);
    assert.ok(err instanceof DoppelError);
    assert.equal(err.name, 'QmpError');
    assert.equal(err.qmpClass, 'CommandNotFound');
    assert.equal(err.desc, 'The command no-such-command has not been found');
    assert.equal(err.command, 'no-such-command');
    assert.equal(err.code, 'FAILED_PRECONDITION');
    const bad = await q.qmp.execute('migrate-continue', { state: 'pre-switchover' }).catch((e: unknown) => e);
    assert.ok(bad instanceof QmpError && bad.qmpClass === 'GenericError', String(bad));
    assert.equal((await q.qmp.queryStatus()).running, true);
  });
});

test('a missing socket, a refused socket and a socket that is not QMP get clear errors naming the path', async () => {
  const missing = path('missing.sock');
  await assert.rejects(QmpClient.connect(missing, { timeoutMs: 1000 }), (e: Error) => e instanceof NotFoundError && e.message.includes(missing));

  // QEMU killed with SIGKILL leaves its socket file behind, with nobody listening.
  const stale = path('stale.sock');
  const q = await QemuProcess.start({ args: [...NONE, '-qmp', `unix:${stale},server=on,wait=off`], qmpSocketPath: stale });
  q.kill('SIGKILL');
  await q.exited;
  assert.ok(existsSync(stale));
  await assert.rejects(QmpClient.connect(stale, { timeoutMs: 1000 }), (e: Error) => e instanceof UnavailableError && e.message.includes(stale) && /refused/.test(e.message));

  const chatty = await fakeServer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
  await assert.rejects(QmpClient.connect(chatty.path, { timeoutMs: 1000 }), (e: Error) => e instanceof QmpProtocolError && e.message.includes(chatty.path) && /not JSON/.test(e.message));
  chatty.server.close();

  const json = await fakeServer((s) => s.end('{"hello": 1}\n'));
  await assert.rejects(QmpClient.connect(json.path, { timeoutMs: 1000 }), (e: Error) => e instanceof QmpProtocolError && /not a QMP socket/.test(e.message));
  json.server.close();

  const silent = await fakeServer(() => undefined);
  await assert.rejects(QmpClient.connect(silent.path, { timeoutMs: 200 }), (e: Error) => e.name === 'DeadlineExceededError' && e.message.includes(silent.path) && /greeting/.test(e.message));
  silent.server.close();

  const notSocket = path('plain-file');
  writeFileSync(notSocket, 'x');
  await assert.rejects(QmpClient.connect(notSocket, { timeoutMs: 1000 }), (e: Error) => e instanceof DoppelError && e.message.includes(notSocket));
});

test('a second client gets no greeting while the first holds the monitor', async () => {
  await withQemu(NONE, async (q) => {
    await assert.rejects(QmpClient.connect(q.qmpSocketPath, { timeoutMs: 300 }), (e: Error) => e.name === 'DeadlineExceededError' && /another client holds the monitor/.test(e.message));
  });
});

test('QEMU killed while a command is pending: the command rejects with QmpClosedError and exited resolves', async () => {
  const q = await QemuProcess.start({ args: NONE });
  // A stopped process cannot answer: the command stays pending until the kill.
  q.kill('SIGSTOP');
  const pending = q.qmp.execute('query-status', undefined, { timeoutMs: 10_000 });
  const event = q.qmp.waitForEvent('SHUTDOWN', { timeoutMs: 10_000 });
  await sleep(50);
  q.kill('SIGKILL');
  await assert.rejects(pending, (e: Error) => e instanceof QmpClosedError && /query-status/.test(e.message) && /QEMU exited/.test(e.message));
  await assert.rejects(event, QmpClosedError);
  const exit = await q.exited;
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(q.qmp.isOpen, false);
  await assert.rejects(q.qmp.execute('query-status'), QmpClosedError);
  const reason = await q.qmp.closed;
  assert.ok(reason instanceof QmpClosedError);
});

test('quit asks QEMU over QMP and it exits 0; a second quit returns the same exit', async () => {
  const q = await QemuProcess.start({ args: Q35_PAUSED });
  const exit = await q.quit(5000);
  assert.deepEqual([exit.code, exit.signal], [0, null]);
  assert.equal(await q.quit(), exit);
});

test('start failures: a bad argument shows QEMU stderr; a missing binary is NotFoundError', async () => {
  await assert.rejects(QemuProcess.start({ args: ['-M', 'no-such-machine', '-nodefaults', '-display', 'none'] }), (e: Error) => {
    assert.ok(e instanceof QemuStartError, String(e));
    assert.match(e.message, /exited \(code 1\) before its QMP socket came up/);
    assert.match(e.message, /no-such-machine/);
    assert.equal(e.exit?.code, 1);
    return true;
  });
  await assert.rejects(QemuProcess.start({ binary: '/nonexistent/qemu', args: NONE }), (e: Error) => e instanceof NotFoundError && e.message.includes('/nonexistent/qemu'));
});

test('adopt: a QMP session with a QEMU started outside; its exit closes the client', async () => {
  const sock = path('adopt.sock');
  const child = spawn('qemu-system-x86_64', [...Q35_PAUSED, '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  const childExit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let qmp: QmpClient | null = null;
    for (let i = 0; i < 250 && !qmp; i++) {
      qmp = await adopt(sock, { timeoutMs: 2000 }).catch(async () => {
        await sleep(20);
        return null;
      });
    }
    assert.ok(qmp, 'adopted');
    assert.equal((await qmp.queryStatus()).status, 'prelaunch');
    assert.equal(qmp.version.major, 10);
    await qmp.execute('quit').catch((e: unknown) => assert.ok(e instanceof QmpClosedError));
    assert.ok((await qmp.closed) instanceof QmpClosedError);
    assert.equal(await childExit, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('query-migrate on a fresh VM says none; pause-before-switchover is accepted', async () => {
  await withQemu(Q35_PAUSED, async (q) => {
    const m = await q.qmp.queryMigrate();
    assert.equal(m.status, 'none');
    assert.deepEqual(m.raw, {});
    await q.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: true }] });
    const caps = await q.qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
    assert.equal(caps.find((c) => c.capability === 'pause-before-switchover')?.state, true);
  });
});

test('the clone primitive without a guest: pre-switchover, migrate-continue, cont retried until postmigrate', async () => {
  const dir = mkdtempSync(join(root, 'mig-'));
  const base = { memoryMib: 64, vcpus: 1, cpuModel: 'qemu64', disks: [], nics: [], accel: 'tcg' as const };
  const srcSpec: QemuMachineSpec = { ...base, name: 'src', qmpSocket: join(dir, 's.qmp'), serialSocket: join(dir, 's.ser'), paused: true };
  const dstSpec: QemuMachineSpec = { ...base, name: 'dst', qmpSocket: join(dir, 'd.qmp'), serialSocket: join(dir, 'd.ser'), paused: true, incoming: 'defer' };
  const src = await QemuProcess.start({ args: buildQemuArgs(srcSpec), qmpSocketPath: srcSpec.qmpSocket });
  const dst = await QemuProcess.start({ args: buildQemuArgs(dstSpec), qmpSocketPath: dstSpec.qmpSocket });
  try {
    assert.equal((await dst.qmp.queryStatus()).status, 'inmigrate');
    await src.qmp.execute('cont');
    // MIGRATION events come only with the `events` capability.
    await src.qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'pause-before-switchover', state: true },
        { capability: 'events', state: true },
      ],
    });
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${join(dir, 'mig.sock')}` });
    const seq = src.qmp.lastEventSeq;
    await src.qmp.execute('migrate', { uri: `unix:${join(dir, 'mig.sock')}` });
    await src.qmp.waitForEvent('MIGRATION', { afterSeq: seq, predicate: (e) => e.data.status === 'pre-switchover', timeoutMs: 20_000 });
    const m = await src.qmp.queryMigrate();
    assert.equal(m.status, 'pre-switchover');
    assert.ok(m.ram && m.ram.dirtySyncCount >= 1);
    // In the window the run state is finish-migrate, and cont is refused.
    assert.deepEqual(await src.qmp.queryStatus(), { status: 'finish-migrate', running: false });
    await assert.rejects(src.qmp.execute('cont'), (e: Error) => e instanceof QmpError && e.desc === 'Migration is not finalized yet');
    await src.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    for (let i = 0; ; i++) {
      try {
        await src.qmp.execute('cont');
        break;
      } catch (e) {
        assert.ok(e instanceof QmpError && e.desc === 'Migration is not finalized yet' && i < 500, String(e));
        await sleep(10);
      }
    }
    assert.equal((await src.qmp.queryStatus()).status, 'running');
    assert.equal((await src.qmp.queryMigrate()).status, 'completed');
    for (let i = 0; (await dst.qmp.queryStatus()).status === 'inmigrate'; i++) {
      assert.ok(i < 500, 'destination never left inmigrate');
      await sleep(10);
    }
    assert.deepEqual(await dst.qmp.queryStatus(), { status: 'paused', running: false });
  } finally {
    await Promise.all([src.quit(5000), dst.quit(5000)]);
  }
});

test('fake peers: a reply timeout keeps the session; an oversized line drops it and fails pending commands', async () => {
  let answer = false;
  const slow = await fakeServer(
    fakeQmp((s, msg) => {
      if (answer) s.write(JSON.stringify({ return: { ok: msg.execute }, id: msg.id }) + '\r\n');
    }),
  );
  const c = await QmpClient.connect(slow.path, { timeoutMs: 1000 });
  await assert.rejects(c.execute('query-status', undefined, { timeoutMs: 100 }), (e: Error) => e instanceof QmpTimeoutError && /query-status/.test(e.message));
  answer = true;
  assert.deepEqual(await c.execute('query-name'), { ok: 'query-name' });
  await c.close();
  await assert.rejects(c.execute('query-name'), QmpClosedError);
  slow.server.close();

  const huge = await fakeServer(
    fakeQmp((s) => {
      s.write('{"return": "' + 'x'.repeat(8192));
    }),
  );
  const h = await QmpClient.connect(huge.path, { timeoutMs: 1000, maxLineBytes: 4096 });
  await assert.rejects(h.execute('query-status'), (e: Error) => e instanceof QmpClosedError && /exceeds the 4096-byte limit/.test(e.message));
  assert.ok((await h.closed) instanceof QmpProtocolError);
  huge.server.close();

  // Replies matched by id, whatever order they come in; events interleave.
  const shuffled = await fakeServer(
    fakeQmp((() => {
      const held: { s: Socket; id: unknown; cmd: string }[] = [];
      return (s: Socket, msg: { execute: string; id?: unknown }) => {
        held.push({ s, id: msg.id, cmd: msg.execute });
        if (held.length === 2) {
          s.write(JSON.stringify({ event: 'X', data: { n: 1 }, timestamp: { seconds: 1, microseconds: 2 } }) + '\r\n');
          for (const r of held.reverse()) r.s.write(JSON.stringify({ return: r.cmd, id: r.id }) + '\r\n');
        }
      };
    })()),
  );
  const m = await QmpClient.connect(shuffled.path, { timeoutMs: 1000 });
  const seq = m.lastEventSeq;
  assert.deepEqual(await Promise.all([m.execute('a'), m.execute('b')]), ['a', 'b']);
  const x = await m.waitForEvent('X', { afterSeq: seq, timeoutMs: 100 });
  assert.deepEqual([x.data, x.timestampUs], [{ n: 1 }, 1_000_002]);
  await m.close();
  shuffled.server.close();
});

test('detectAccel returns kvm or tcg with a reason; DOPPEL_QEMU_ACCEL overrides it', async () => {
  const d = await detectAccel();
  assert.ok(d.accel === 'kvm' || d.accel === 'tcg');
  assert.ok(d.reason.length > 10, d.reason);
  assert.equal(d.source, 'probe');
  assert.equal(await detectAccel(), d, 'cached per process');
  assert.deepEqual(await detectAccel({ env: { [ACCEL_ENV]: 'tcg' } }), { accel: 'tcg', reason: `${ACCEL_ENV}=tcg chose it`, source: 'env' });
  assert.equal((await detectAccel({ env: { [ACCEL_ENV]: 'kvm' } })).accel, 'kvm');
  await assert.rejects(detectAccel({ env: { [ACCEL_ENV]: 'xen' } }), InvalidArgumentError);
  const none = await detectAccel({ env: {}, refresh: true, kvmDevice: path('no-kvm') });
  assert.equal(none.accel, 'tcg');
  assert.match(none.reason, /does not exist/);
});

const SPEC: QemuMachineSpec = {
  name: 'web-1',
  memoryMib: 512,
  vcpus: 2,
  cpuModel: 'qemu64',
  kernel: '/var/lib/doppel/boot/vmlinuz',
  initrd: '/var/lib/doppel/boot/initrd.img',
  append: 'console=ttyS0 quiet',
  disks: [
    { path: '/var/lib/doppel/vms/web-1/root.qcow2', format: 'qcow2' },
    { path: '/var/lib/doppel/vms/web-1/data,1.raw', format: 'raw', readOnly: true },
  ],
  nics: [{ mac: '52:54:00:12:34:56' }, { mac: '52:54:00:12:34:57', netdev: 'none' }],
  serialSocket: '/run/doppel/web-1/serial.sock',
  qmpSocket: '/run/doppel/web-1/qmp,x.sock',
  pidFile: '/run/doppel/web-1/qemu.pid',
  accel: 'tcg',
};

test('command line: a full spec, snapshot', () => {
  assert.deepEqual(buildQemuArgs(SPEC), [
    '-name', 'guest=web-1,process=doppel-web-1',
    '-machine', 'q35',
    '-accel', 'tcg',
    '-cpu', 'qemu64',
    '-m', '512',
    '-smp', '2',
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-msg', 'timestamp=on',
    '-chardev', 'socket,id=qmp,path=/run/doppel/web-1/qmp,,x.sock,server=on,wait=off',
    '-mon', 'chardev=qmp,mode=control',
    '-chardev', 'socket,id=serial0,path=/run/doppel/web-1/serial.sock,server=on,wait=off',
    '-device', 'isa-serial,chardev=serial0',
    '-pidfile', '/run/doppel/web-1/qemu.pid',
    '-kernel', '/var/lib/doppel/boot/vmlinuz',
    '-initrd', '/var/lib/doppel/boot/initrd.img',
    '-append', 'console=ttyS0 quiet',
    '-blockdev', '{"node-name":"disk0-file","driver":"file","filename":"/var/lib/doppel/vms/web-1/root.qcow2","read-only":false,"aio":"threads","cache":{"direct":false,"no-flush":false}}',
    '-blockdev', '{"node-name":"disk0","driver":"qcow2","file":"disk0-file","read-only":false,"discard":"unmap"}',
    '-device', 'virtio-blk-pci,drive=disk0,id=disk0-dev',
    '-blockdev', '{"node-name":"disk1-file","driver":"file","filename":"/var/lib/doppel/vms/web-1/data,1.raw","read-only":true,"aio":"threads","cache":{"direct":false,"no-flush":false}}',
    '-blockdev', '{"node-name":"disk1","driver":"raw","file":"disk1-file","read-only":true,"discard":"unmap"}',
    '-device', 'virtio-blk-pci,drive=disk1,id=disk1-dev',
    '-netdev', 'user,id=net0',
    '-device', 'virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,id=nic0',
    '-device', 'virtio-net-pci,mac=52:54:00:12:34:57,id=nic1',
  ]);
});

test('command line: a clone target waits paused for an incoming migration, on a pinned machine type', () => {
  const args = buildQemuArgs({
    name: 'web-1-clone',
    memoryMib: 64,
    vcpus: 1,
    cpuModel: 'host',
    machineType: 'pc-q35-10.0',
    disks: [],
    nics: [],
    serialSocket: '/run/d/s.sock',
    qmpSocket: '/run/d/q.sock',
    accel: 'kvm',
    paused: true,
    incoming: 'defer',
  });
  assert.deepEqual(args.slice(0, 8), ['-name', 'guest=web-1-clone,process=doppel-web-1-clone', '-machine', 'pc-q35-10.0', '-accel', 'kvm', '-cpu', 'host']);
  assert.deepEqual(args.slice(-3), ['-S', '-incoming', 'defer']);
  assert.ok(!args.includes('-kernel') && !args.includes('-blockdev') && !args.includes('-netdev'));
});

test('command line: bad specs are InvalidArgumentError naming the field', () => {
  const bad: [Partial<QemuMachineSpec>, RegExp][] = [
    [{ name: 'a b' }, /VM name "a b"/],
    [{ memoryMib: 512.5 }, /memoryMib 512.5/],
    [{ memoryMib: 0 }, /memoryMib 0/],
    [{ vcpus: 0 }, /vcpus 0/],
    [{ cpuModel: 'qemu64,+avx' }, /cpu model/],
    [{ cpuModel: 'host' }, /"host" needs KVM/],
    [{ machineType: 'pc-i440fx-10.0' }, /not a q35 machine type/],
    [{ kernel: 'vmlinuz' }, /kernel "vmlinuz" is not an absolute path/],
    [{ kernel: undefined }, /initrd needs a kernel/],
    [{ append: 'console=ttyS0\nx' }, /append holds a control character/],
    [{ disks: [{ path: 'rel.qcow2', format: 'qcow2' }] }, /disks\[0\]\.path "rel\.qcow2"/],
    [{ disks: [{ path: '/a.img', format: 'vmdk' as 'raw' }] }, /disks\[0\]\.format "vmdk"/],
    [{ disks: [{ path: '/a.img', format: 'raw' }, { path: '/a.img', format: 'raw' }] }, /used by two disks/],
    [{ nics: [{ mac: '52:54:00:12:34' }] }, /nics\[0\]\.mac/],
    [{ nics: [{ mac: '01:54:00:12:34:56' }] }, /multicast/],
    [{ qmpSocket: '/' + 'x'.repeat(120) }, /qmpSocket .* over the 107/],
    [{ serialSocket: SPEC.qmpSocket }, /same path/],
    [{ accel: 'hvf' as 'tcg' }, /accel "hvf"/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => buildQemuArgs({ ...SPEC, ...patch }), (e: Error) => e instanceof InvalidArgumentError && re.test(e.message), `${JSON.stringify(patch)} → ${re}`);
  }
});

test('command line: QEMU accepts what buildQemuArgs writes; disks are addressable by node name', async () => {
  const dir = mkdtempSync(join(root, 'cl-'));
  const disk = join(dir, 'root,1.qcow2');
  const img = spawn('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M'], { stdio: 'inherit' });
  assert.equal(await new Promise((resolve) => img.once('exit', resolve)), 0);
  const spec: QemuMachineSpec = {
    name: 'cl',
    memoryMib: 64,
    vcpus: 1,
    cpuModel: 'qemu64',
    disks: [{ path: disk, format: 'qcow2' }],
    nics: [{ mac: '52:54:00:00:00:01' }, { mac: '52:54:00:00:00:02', netdev: 'none' }],
    serialSocket: join(dir, 'serial.sock'),
    qmpSocket: join(dir, 'qmp.sock'),
    pidFile: join(dir, 'qemu.pid'),
    accel: 'tcg',
    paused: true,
    incoming: 'defer',
  };
  const q = await QemuProcess.start({ args: buildQemuArgs(spec), qmpSocketPath: spec.qmpSocket, stderrPath: join(dir, 'stderr.log') });
  try {
    assert.equal((await q.qmp.queryStatus()).status, 'inmigrate');
    const nodes = await q.qmp.execute<{ 'node-name': string; drv: string; file: string }[]>('query-named-block-nodes', { flat: true });
    const node = nodes.find((b) => b['node-name'] === diskNodeName(0));
    assert.ok(node, JSON.stringify(nodes.map((b) => b['node-name'])));
    assert.equal(node.drv, 'qcow2');
    assert.equal(node.file, disk);
    // The backend-less NIC is what QEMU warns about; the warning lands in the stderr file.
    assert.match(q.stderrTail(), /nic nic1 has no peer/);
    // Starting a second QEMU on a live QMP socket is refused.
    await assert.rejects(QemuProcess.start({ args: buildQemuArgs(spec), qmpSocketPath: spec.qmpSocket }), (e: Error) => e.name === 'AlreadyExistsError');
  } finally {
    await q.quit(5000);
  }
});
