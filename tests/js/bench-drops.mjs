// The benchmark's `drops` scenario, with the official socket.io-client as a
// browser app has it: `confab-bench drops` runs it once per server and
// contract and reads the JSON it prints last. Not a test.
//
//   DROPS_URL=http://127.0.0.1:3000 DROPS_SECRET=… DROPS_NS=/v3 DROPS_CONTRACT=v3 \
//     node tests/js/bench-drops.mjs
//
// CLIENTS clients (DROPS_CLIENTS, 1000) in conversations of ROOM
// (DROPS_ROOM, 100), each conversation with a sender that never drops
// (on DROPS_SENDER_NS, default /raven) sending numbered messages at RATE a
// second (DROPS_RATE, 5) for SECONDS (DROPS_SECONDS, 60). Every client's
// TCP connection is destroyed without a close every 10–15 s
// (DROPS_CUT_MIN_S, DROPS_CUT_MAX_S) while the client reconnects by itself;
// a client whose session was not recovered joins its conversation again,
// as a frontend does on connect. Printed: messages delivered (of those
// whose send was acknowledged, times the members), clients that got every
// one, duplicates, reconnects and how many were recovered, and the replay
// latency — from the reconnect's transport being open to the last message
// sent before then that arrived after — p50 and p99.
import { io } from 'socket.io-client';
import { createHmac } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MESSAGING } from './confab.mjs';

const env = (k, d) => process.env[k] ?? d;
const URL = env('DROPS_URL', 'http://127.0.0.1:3000');
const SECRET = env('DROPS_SECRET', '');
const NS = env('DROPS_NS', '/raven');
const CONTRACT = env('DROPS_CONTRACT', 'raven');
const SENDER_NS = env('DROPS_SENDER_NS', '/raven');
const CLIENTS = Number(env('DROPS_CLIENTS', 1000));
const ROOM = Number(env('DROPS_ROOM', 100));
const RATE = Number(env('DROPS_RATE', 5));
const SECONDS = Number(env('DROPS_SECONDS', 60));
const CUT_MIN = Number(env('DROPS_CUT_MIN_S', 10)) * 1000;
const CUT_MAX = Number(env('DROPS_CUT_MAX_S', 15)) * 1000;
const RUN = Math.random().toString(36).slice(2, 8);

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name: sub, iat: now, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function conversation(owner, members, i) {
  const res = await fetch(`${URL}/api/conversations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token(owner)}` },
    body: JSON.stringify({ members, name: `drops ${i}` }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`create conversation: ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

const messaging = MESSAGING[CONTRACT];
// `raven` joins with an ack, which confab's and the Node baseline's both answer.
const ravenJoin = async (s, id) => {
  const ack = await s.timeout(10000).emitWithAck('join_conversation', { conversation_id: id });
  if (ack?.success === false) throw new Error(`join: ${JSON.stringify(ack)}`);
};
const join = CONTRACT === 'raven' ? ravenJoin : messaging.join;
const rooms = Math.ceil(CLIENTS / ROOM);
const conversations = [];
for (let r = 0; r < rooms; r++) {
  const sender = `s${RUN}_${r}`;
  const members = [];
  for (let i = r * ROOM; i < Math.min(CLIENTS, (r + 1) * ROOM); i++) members.push(`c${RUN}_${i}`);
  const id = await conversation(sender, members, r);
  conversations.push({ id, sender, members, sent: new Map(), acked: [] });
}

const opts = { forceNew: true, transports: ['websocket'], reconnectionDelay: 500, reconnectionDelayMax: 2000 };
const clients = [];
let measuring = false;
for (const [r, conv] of conversations.entries()) {
  for (const user of conv.members) {
    const s = io(URL + NS, { ...opts, auth: { token: token(user) } });
    const c = { s, conv: r, arrivals: new Map(), dups: 0, reconnects: [], down: null, first: true };
    s.on('ping', function (t) { this.emit('pong', t); });
    s.on('heartbeat', function (b) { this.emit('heartbeat_response', { timestamp: b?.timestamp }); });
    s.on(messaging.event, (d) => {
      const text = messaging.text(d);
      if (typeof text !== 'string' || !text.startsWith('m')) return;
      const n = Number(text.slice(1));
      if (c.arrivals.has(n)) c.dups++;
      else c.arrivals.set(n, performance.now());
    });
    s.on('disconnect', () => {
      c.down = performance.now();
    });
    // The new connection is open: the replay is timed from here (a server
    // may send what was missed before its connect packet).
    s.io.on('open', () => {
      c.opened = performance.now();
    });
    s.on('connect', () => {
      if (!c.first && measuring) {
        c.reconnects.push({ down: c.down, up: c.opened, connected: performance.now(), recovered: s.recovered });
      }
      const firstTime = c.first;
      c.first = false;
      const joined = s.recovered ? Promise.resolve() : join(s, conv.id);
      joined.catch(() => {}).finally(() => {
        if (firstTime) c.joined = true;
      });
    });
    clients.push(c);
  }
  // Let the handshakes of one conversation finish before the next.
  while (clients.some((c) => !c.joined)) await sleep(20);
}
await sleep(1000);

// The senders: one per conversation, never cut.
const senders = [];
for (const conv of conversations) {
  const s = io(URL + SENDER_NS, { ...opts, auth: { token: token(conv.sender) } });
  await new Promise((r) => s.once('connect', r));
  await ravenJoin(s, conv.id);
  senders.push(s);
}

measuring = true;
// This process's own lag (its event loop busy with the clients' traffic),
// which every latency it measures includes.
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
const start = performance.now();
const end = start + SECONDS * 1000;
// Cuts: each client at a random moment in every 10–15 s.
const timers = [];
for (const c of clients) {
  const schedule = () => {
    const at = CUT_MIN + Math.random() * (CUT_MAX - CUT_MIN);
    timers.push(
      setTimeout(() => {
        if (performance.now() > end - 2000) return;
        const ws = c.s.io.engine?.transport?.ws;
        if (ws?._socket) ws._socket.destroy();
        schedule();
      }, at),
    );
  };
  schedule();
}
// Numbered messages, each conversation at RATE a second.
let n = 0;
const interval = 1000 / RATE;
const sending = conversations.map(async (conv, r) => {
  await sleep((interval * r) / conversations.length);
  for (let next = performance.now(); performance.now() < end; next += interval) {
    const m = n++;
    conv.sent.set(m, performance.now());
    senders[r]
      .timeout(10000)
      .emitWithAck('send_message', { conversation_id: conv.id, text: `m${m}` })
      .then((ack) => {
        if (ack?.success !== false) conv.acked.push(m);
      })
      .catch(() => {});
    const wait = next + interval - performance.now();
    if (wait > 0) await sleep(wait);
  }
});
await Promise.all(sending);
timers.forEach(clearTimeout);
// Every reconnect settles, then what was sent has time to arrive.
await sleep(5000);
measuring = false;

let expected = 0;
let delivered = 0;
let complete = 0;
let duplicates = 0;
let reconnects = 0;
let recovered = 0;
const replay = [];
const handshake = [];
for (const c of clients) {
  const conv = conversations[c.conv];
  let got = 0;
  for (const m of conv.acked) if (c.arrivals.has(m)) got++;
  expected += conv.acked.length;
  delivered += got;
  if (got === conv.acked.length) complete++;
  duplicates += c.dups;
  for (const r of c.reconnects) {
    reconnects++;
    if (r.recovered) recovered++;
    handshake.push(r.connected - r.up);
    // Messages sent before the reconnect that arrived after it.
    let last = null;
    for (const [m, sentAt] of conv.sent) {
      if (sentAt >= r.up) continue;
      const at = c.arrivals.get(m);
      if (at !== undefined && at >= r.up) last = Math.max(last ?? 0, at - r.up);
    }
    if (last !== null) replay.push(last);
  }
}
replay.sort((a, b) => a - b);
handshake.sort((a, b) => a - b);
const at = (xs, p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : null);
const q = (p) => at(replay, p);
const result = {
  clients: CLIENTS,
  room: ROOM,
  rate: RATE,
  seconds: SECONDS,
  sent: conversations.reduce((a, c) => a + c.sent.size, 0),
  acked: conversations.reduce((a, c) => a + c.acked.length, 0),
  expected,
  delivered,
  complete,
  duplicates,
  reconnects,
  recovered,
  replay_p50_ms: q(0.5),
  replay_p99_ms: q(0.99),
  // From the open transport to the client's `connect`: the handshake's
  // share of the replay.
  handshake_p50_ms: at(handshake, 0.5),
  handshake_p99_ms: at(handshake, 0.99),
  client_lag_p99_ms: lag.percentile(99) / 1e6,
};
for (const c of clients) c.s.close();
for (const s of senders) s.close();
console.log(JSON.stringify(result));
process.exit(0);
