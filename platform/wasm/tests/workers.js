'use strict';
// usysv in WebAssembly between Node.js workers: one shared WebAssembly.Memory
// holds the arena, every worker instantiates the module over it.
//
//   node workers.js usysv_wasm.wasm
//
// The main thread is party 1: it creates objects, reads results and removes
// objects, and never makes a call that blocks (its event loop runs the
// watchdog). Workers are parties 2 and up, each with its own stack. Prints one
// line per scenario and exits 0 when every result is exact; exits 1 on a
// wrong result and 2 when the watchdog fires.

const fs = require('node:fs');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const IPC_PRIVATE = 0;
const IPC_CREAT = 0o1000;
const IPC_NOWAIT = 0o4000;
const IPC_RMID = 0;
const GETPID = 11;
const GETVAL = 12;
const GETNCNT = 14;
const SETVAL = 16;
const SEM_UNDO = 0x1000;
const EAGAIN = 11;
const EINVAL = 22;
const ENOMSG = 42;
const EIDRM = 43;

const WASM_PAGE = 65536;
const ARENA_BYTES = 4 << 20;
// Each party's block: its scratch buffers, then its stack (growing down
// from the block's end toward them).
const SCRATCH_BYTES = 64 << 10;
const STACK_BYTES = 64 << 10;
const BLOCK_BYTES = SCRATCH_BYTES + STACK_BYTES;
const WATCHDOG_MS = 60_000;

const PING_PONG_ROUNDS = 10_000;
const COUNTER_WORKERS = 4;
const COUNTER_INCREMENTS = 5_000;
const CONFORMANCE_PARTIES = 4;
// The main thread, and the most workers at once.
const PARTIES = 1 + Math.max(2, COUNTER_WORKERS, CONFORMANCE_PARTIES);

// Words the JavaScript side keeps in the shared memory, in the words page.
const TURN = 0;
const PHASE = 1;
const COUNTER = 2;

class Failure extends Error {}

function expect(what, got, want) {
  if (got !== want) {
    throw new Failure(`${what}: got ${got}, want ${want}`);
  }
}

function ok(what, result) {
  if (result < 0) {
    throw new Failure(`${what}: failed with errno ${-result}`);
  }
  return result;
}

// The imported memory's limits, read from the module's import section
// (Node has no type reflection without a flag).
function memoryImport(bytes) {
  let at = 8;
  const leb = () => {
    let value = 0;
    let scale = 1;
    let byte;
    do {
      byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return value;
  };
  const skipName = () => {
    const len = leb();
    at += len;
  };
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = leb();
    const end = at + size;
    if (id === 2) {
      for (let count = leb(); count > 0; count--) {
        skipName();
        skipName();
        const kind = bytes[at++];
        if (kind === 0) {
          leb();
        } else if (kind === 1) {
          at++;
          const flags = bytes[at++];
          leb();
          if (flags & 1) leb();
        } else if (kind === 2) {
          const flags = bytes[at++];
          const minimum = leb();
          const maximum = flags & 1 ? leb() : undefined;
          return { minimum, maximum, shared: (flags & 2) !== 0 };
        } else {
          at += 2;
        }
      }
    }
    at = end;
  }
  throw new Failure('the module imports no memory');
}

// An instance of the module for party `party`, on the stack of its block.
function instantiate(module, memory, layout, party) {
  const { exports } = new WebAssembly.Instance(module, {
    env: {
      memory,
      // The same clock in every worker: performance.now() alone starts at
      // each worker's birth.
      usysv_now_ms: () => performance.timeOrigin + performance.now(),
    },
  });
  exports.__stack_pointer.value = layout.blocks[party - 1] + BLOCK_BYTES;
  return exports;
}

// A party's calls, with its scratch buffer for operations and messages.
class Party {
  constructor(module, memory, layout, party) {
    this.x = instantiate(module, memory, layout, party);
    this.party = party;
    this.memory = memory;
    this.scratch = layout.blocks[party - 1];
    this.words = new Int32Array(memory.buffer, layout.words, WASM_PAGE / 4);
    ok('open', this.x.usysv_open(party, layout.arena, ARENA_BYTES, 1000, 1000));
  }

  view() {
    return new DataView(this.memory.buffer);
  }

  semget(key, nsems, flags) {
    return this.x.usysv_semget(this.party, key, nsems, flags);
  }

  // ops: [[sem_num, sem_op, sem_flg], ...]; timeout in nanoseconds.
  semop(semid, ops, timeoutNs) {
    const view = this.view();
    const sops = this.scratch;
    ops.forEach(([num, op, flg], i) => {
      view.setUint16(sops + 6 * i, num, true);
      view.setInt16(sops + 6 * i + 2, op, true);
      view.setInt16(sops + 6 * i + 4, flg, true);
    });
    if (timeoutNs === undefined) {
      return this.x.usysv_semop(this.party, semid, sops, ops.length);
    }
    const timespec = this.scratch + 1024;
    view.setBigInt64(timespec, BigInt(Math.floor(timeoutNs / 1e9)), true);
    view.setInt32(timespec + 8, timeoutNs % 1e9, true);
    return this.x.usysv_semtimedop(this.party, semid, sops, ops.length, timespec);
  }

  semctl(semid, semnum, cmd, val = 0) {
    return this.x.usysv_semctl(this.party, semid, semnum, cmd, val);
  }

  msgget(key, flags) {
    return this.x.usysv_msgget(this.party, key, flags);
  }

  msgsnd(msqid, mtype, bytes, flags = 0) {
    const msgp = this.scratch + 2048;
    this.view().setInt32(msgp, mtype, true);
    new Uint8Array(this.memory.buffer, msgp + 4, bytes.length).set(bytes);
    return this.x.usysv_msgsnd(this.party, msqid, msgp, bytes.length, flags);
  }

  // Returns [mtype, bytes] or the negative errno.
  msgrcv(msqid, room, msgtyp, flags = 0) {
    const msgp = this.scratch + 2048;
    const got = this.x.usysv_msgrcv(this.party, msqid, msgp, room, msgtyp, flags);
    if (got < 0) return got;
    const mtype = this.view().getInt32(msgp, true);
    return [mtype, new Uint8Array(this.memory.buffer, msgp + 4, got).slice()];
  }

  msgctl(msqid, cmd) {
    return this.x.usysv_msgctl(this.party, msqid, cmd);
  }

  close() {
    ok('close', this.x.usysv_close(this.party));
  }
}

function sleep(words, ms) {
  // Waits on a word nobody changes: a sleep that blocks the worker only.
  Atomics.wait(words, WASM_PAGE / 4 - 1, 0, ms);
}

function waitFor(words, index, value) {
  for (;;) {
    const now = Atomics.load(words, index);
    if (now === value) return;
    Atomics.wait(words, index, now, 1000);
  }
}

function payload() {
  const bytes = new Uint8Array(300);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  return bytes;
}

// ---------------------------------------------------------------- workers

const roles = {
  // a. Party A serves, party B returns, through two semaphores; `turn`, a
  // plain word, checks that they strictly alternate.
  pingA(p, { semid }) {
    const words = p.words;
    for (let round = 0; round < PING_PONG_ROUNDS; round++) {
      expect('turn seen by A', words[TURN], 2 * round);
      words[TURN] = 2 * round + 1;
      ok('V(1)', p.semop(semid, [[1, 1, 0]]));
      ok('P(0)', p.semop(semid, [[0, -1, 0]]));
    }
    // Nobody posts semaphore 0 any more: a timed wait must time out.
    const start = performance.now();
    expect('semtimedop on a semaphore at 0', p.semop(semid, [[0, -1, 0]], 50e6), -EAGAIN);
    const waited = performance.now() - start;
    if (waited < 49) throw new Failure(`semtimedop returned after ${waited} ms, before its 50 ms`);
    return PING_PONG_ROUNDS;
  },

  pingB(p, { semid }) {
    const words = p.words;
    for (let round = 0; round < PING_PONG_ROUNDS; round++) {
      ok('P(1)', p.semop(semid, [[1, -1, 0]]));
      expect('turn seen by B', words[TURN], 2 * round + 1);
      words[TURN] = 2 * round + 2;
      ok('V(0)', p.semop(semid, [[0, 1, 0]]));
    }
    return PING_PONG_ROUNDS;
  },

  // b. The receiver blocks in msgrcv for type 7; the sender sends a type 3
  // decoy (which must not end the wait), then the type 7 message.
  receiver(p, { msqid }) {
    const words = p.words;
    expect('msgrcv on an empty queue', p.msgrcv(msqid, 512, 0, IPC_NOWAIT), -ENOMSG);
    Atomics.store(words, PHASE, 1);
    Atomics.notify(words, PHASE);
    const start = performance.now();
    const got = p.msgrcv(msqid, 512, 7);
    const blocked = performance.now() - start;
    if (typeof got === 'number') throw new Failure(`blocking msgrcv failed with errno ${-got}`);
    Atomics.store(words, PHASE, 2);
    Atomics.notify(words, PHASE);
    expect('received type', got[0], 7);
    expect('received length', got[1].length, payload().length);
    expect('received bytes', Buffer.compare(Buffer.from(got[1]), Buffer.from(payload())), 0);
    const decoy = p.msgrcv(msqid, 512, 0, IPC_NOWAIT);
    expect('the decoy left in the queue', decoy[0], 3);
    expect('the decoy', Buffer.from(decoy[1]).toString(), 'decoy');
    // Blocks again, until the sender removes the queue.
    Atomics.store(words, PHASE, 3);
    Atomics.notify(words, PHASE);
    expect('msgrcv on a removed queue', p.msgrcv(msqid, 512, 0), -EIDRM);
    return Math.round(blocked);
  },

  sender(p, { msqid }) {
    const words = p.words;
    waitFor(words, PHASE, 1);
    // The receiver is in msgrcv: give it time to sleep, then check it did
    // not come back without a message.
    sleep(words, 100);
    expect('receiver phase before any message', Atomics.load(words, PHASE), 1);
    ok('msgsnd decoy', p.msgsnd(msqid, 3, Buffer.from('decoy')));
    sleep(words, 50);
    expect('receiver phase after the decoy', Atomics.load(words, PHASE), 1);
    ok('msgsnd', p.msgsnd(msqid, 7, payload()));
    waitFor(words, PHASE, 3);
    sleep(words, 50);
    ok('msgctl IPC_RMID', p.msgctl(msqid, IPC_RMID));
    return 0;
  },

  // c. A plain read-modify-write of a shared word, guarded by a semaphore.
  counter(p, { semid }) {
    const words = p.words;
    for (let i = 0; i < COUNTER_INCREMENTS; i++) {
      ok('P', p.semop(semid, [[0, -1, SEM_UNDO]]));
      const value = words[COUNTER];
      // A call between the read and the write widens the window a lost
      // update needs; inside, the semaphore is ours.
      expect('the semaphore while held', p.semctl(semid, 0, GETVAL), 0);
      words[COUNTER] = value + 1;
      ok('V', p.semop(semid, [[0, 1, SEM_UNDO]]));
    }
    return COUNTER_INCREMENTS;
  },

  // c, after the counting: takes the semaphore with SEM_UNDO and ends
  // without giving it back, and without closing its party.
  holder(p, { semid }) {
    ok('P with SEM_UNDO', p.semop(semid, [[0, -1, SEM_UNDO | IPC_NOWAIT]]));
    expect('value held', p.semctl(semid, 0, GETVAL), 0);
    expect('pid of the last semop', p.semctl(semid, 0, GETPID), p.party);
    return 0;
  },

  // d. The waiter conformance body.
  conformanceSolo(x) {
    return conformanceOutcome(x, 'solo', x.usysv_conformance_solo());
  },

  conformanceParty(x, { me, parties }) {
    return conformanceOutcome(x, `party ${me}`, x.usysv_conformance_party(me, parties));
  },
};

function conformanceOutcome(x, what, outcome) {
  if (outcome === 0n) return 0;
  const at = Number(outcome >> 32n);
  const len = Number(outcome & 0xffffffffn);
  const text = Buffer.from(new Uint8Array(x.memory.buffer, at, len)).toString();
  throw new Failure(`conformance ${what}: ${text}`);
}

function workerMain() {
  const { module, memory, layout, party, role, args } = workerData;
  let result;
  if (role.startsWith('conformance')) {
    result = roles[role](instantiate(module, memory, layout, party), args);
  } else {
    const p = new Party(module, memory, layout, party);
    result = roles[role](p, args);
    if (role !== 'holder') p.close();
  }
  parentPort.postMessage(result);
}

// ------------------------------------------------------------- main thread

// Runs `roles` ([role, args] each) at once, in workers of parties 2 and up;
// resolves with their results.
function runWorkers(common, roleList) {
  return Promise.all(
    roleList.map(([role, args], i) =>
      new Promise((resolve, reject) => {
        const worker = new Worker(__filename, {
          workerData: { ...common, party: i + 2, role, args },
        });
        let result;
        worker.on('message', (value) => {
          result = value;
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (code !== 0 || result === undefined) {
            reject(new Failure(`worker ${role} exited with ${code} and no result`));
          } else {
            resolve(result);
          }
        });
      }),
    ),
  );
}

// Stacks start filled with STACK_FILL; the lowest byte of a stack region
// that differs marks how deep it went.
const STACK_FILL = 0xa5;

function stackDepths(memory, layout) {
  const bytes = new Uint8Array(memory.buffer);
  return layout.blocks.map((block) => {
    let at = block + SCRATCH_BYTES;
    while (at < block + BLOCK_BYTES && bytes[at] === STACK_FILL) at++;
    return block + BLOCK_BYTES - at;
  });
}

async function main() {
  const file = process.argv[2];
  if (!file) throw new Failure('usage: node workers.js MODULE.wasm');
  const bytes = fs.readFileSync(file);
  const module = new WebAssembly.Module(bytes);
  const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`);
  expect('imports', imports.join(' '), 'env.memory:memory env.usysv_now_ms:function');
  const limits = memoryImport(bytes);
  expect('the imported memory is shared', limits.shared, true);
  const memory = new WebAssembly.Memory({
    initial: limits.minimum,
    maximum: limits.maximum,
    shared: true,
  });
  // Everything the module did not ask for is ours: grown pages lie above
  // its data, its statics and its own stack.
  const grow = (size) => memory.grow(size / WASM_PAGE) * WASM_PAGE;
  const layout = { arena: grow(ARENA_BYTES), words: grow(WASM_PAGE), blocks: [] };
  for (let party = 1; party <= PARTIES; party++) {
    const block = grow(BLOCK_BYTES);
    new Uint8Array(memory.buffer, block + SCRATCH_BYTES, STACK_BYTES).fill(STACK_FILL);
    layout.blocks.push(block);
  }
  const common = { module, memory, layout };

  let stage = 'start';
  const watchdog = setTimeout(() => {
    console.error(`watchdog: still in "${stage}" after ${WATCHDOG_MS} ms: a hang`);
    process.exit(2);
  }, WATCHDOG_MS);

  const me = new Party(module, memory, layout, 1);
  const words = me.words;

  stage = 'ping-pong';
  const pair = ok('semget', me.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600));
  const rounds = await runWorkers(common, [['pingA', { semid: pair }], ['pingB', { semid: pair }]]);
  expect('rounds', rounds.join(), `${PING_PONG_ROUNDS},${PING_PONG_ROUNDS}`);
  expect('turn', words[TURN], 2 * PING_PONG_ROUNDS);
  expect('semaphore 0 after the game', me.semctl(pair, 0, GETVAL), 0);
  expect('semaphore 1 after the game', me.semctl(pair, 1, GETVAL), 0);
  ok('IPC_RMID', me.semctl(pair, 0, IPC_RMID));
  expect('IPC_RMID of a removed set', me.semctl(pair, 0, IPC_RMID), -EINVAL);
  console.log(`ping-pong: ${PING_PONG_ROUNDS} rounds between 2 workers, strictly alternating`);

  stage = 'blocking msgrcv';
  const queue = ok('msgget', me.msgget(IPC_PRIVATE, IPC_CREAT | 0o600));
  const [blocked] = await runWorkers(common, [['receiver', { msqid: queue }], ['sender', { msqid: queue }]]);
  if (blocked < 140) throw new Failure(`msgrcv returned after ${blocked} ms: it did not block`);
  expect('msgctl on the removed queue', me.msgctl(queue, IPC_RMID), -EINVAL);
  console.log(`blocking msgrcv: blocked ${blocked} ms, woken by the type 7 message (not the decoy), bytes exact; EIDRM on removal`);

  stage = 'counter';
  const mutex = ok('semget', me.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600));
  const counting = runWorkers(
    common,
    Array.from({ length: COUNTER_WORKERS }, () => ['counter', { semid: mutex }]),
  );
  // The workers find the semaphore at 0 and wait; SETVAL lets them in.
  while (me.semctl(mutex, 0, GETNCNT) < COUNTER_WORKERS) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  ok('SETVAL', me.semctl(mutex, 0, SETVAL, 1));
  await counting;
  expect('counter', words[COUNTER], COUNTER_WORKERS * COUNTER_INCREMENTS);
  expect('mutex after counting', me.semctl(mutex, 0, GETVAL), 1);
  // A worker that ended holding the semaphore: its party stays open (and
  // the semaphore held) until another instance closes it for it.
  await runWorkers(common, [['holder', { semid: mutex }]]);
  expect('mutex after its holder ended', me.semctl(mutex, 0, GETVAL), 0);
  ok('closing the ended worker\'s party', me.x.usysv_close(2));
  expect('mutex after closing its holder\'s party (SEM_UNDO)', me.semctl(mutex, 0, GETVAL), 1);
  expect('closing it again', me.x.usysv_close(2), -EINVAL);
  ok('IPC_RMID', me.semctl(mutex, 0, IPC_RMID));
  console.log(
    `counter: ${COUNTER_WORKERS} workers x ${COUNTER_INCREMENTS} guarded increments = ${words[COUNTER]}; ` +
      'SEM_UNDO undone when an ended worker\'s party is closed',
  );

  stage = 'conformance';
  await runWorkers(common, [['conformanceSolo', {}]]);
  await runWorkers(
    common,
    Array.from({ length: CONFORMANCE_PARTIES }, (_, i) => [
      'conformanceParty',
      { me: i, parties: CONFORMANCE_PARTIES },
    ]),
  );
  conformanceOutcome(me.x, 'verify', me.x.usysv_conformance_verify(CONFORMANCE_PARTIES));
  console.log(`conformance: the waiter conformance body passed across ${CONFORMANCE_PARTIES} workers`);

  me.close();
  const depths = stackDepths(memory, layout);
  // Every party ran on its own stack, and none came near its end.
  const deepest = Math.max(...depths);
  if (Math.min(...depths) === 0 || deepest > STACK_BYTES / 2) {
    throw new Failure(`stack depths ${depths.join(', ')} (each of ${STACK_BYTES} bytes)`);
  }
  console.log(`stacks: each party used its own; deepest ${deepest} bytes of ${STACK_BYTES}`);
  clearTimeout(watchdog);
}

if (isMainThread) {
  main().catch((err) => {
    console.error(err instanceof Failure ? `FAILED: ${err.message}` : err);
    process.exit(1);
  });
} else {
  workerMain();
}
