// Scaled out (tests/src/replicas.rs): two edges, each in front of its own
// chat-service replica, both replicas on one PostgreSQL database and one
// Redis. The message rate limit — 10 messages per user in any one second —
// counts a user's sends on every edge and contract: one user with a v3 tab
// on edge A and a raven tab on edge B sends 11 in one second, and exactly
// one is refused, in the shape of the contract it was sent in.
//
// Both replicas append to one event log in Redis, and each edge follows its
// own replica's stream of it, so every edge hears every message, whichever
// replica stored it: the listener has a raven socket on each edge, and
// each hears every message sent through either edge, once. What was stored
// is read from the shared database (history over REST).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { QUIET_MS, answerHeartbeats, conversation, next, record, rest, sleep, token, uid } from './confab.mjs';

const LIMIT = 10;
const WINDOW_MS = 1000;

/** Edge A (also CONFAB_URL), then edge B, from the harness's control server. */
let EDGES = [];
before(async () => {
  const res = await fetch(`${process.env.CONFAB_CONTROL_URL}/edges`);
  assert.equal(res.status, 200);
  EDGES = await res.json();
  assert.equal(EDGES.length, 2, JSON.stringify(EDGES));
});

const sockets = new Set();
after(() => {
  for (const s of sockets) s.disconnect();
});

/** A connected socket.io-client socket on edge `edge` (0: A, 1: B). */
function connectTo(edge, namespace, options) {
  const socket = io(EDGES[edge] + namespace, { reconnection: false, forceNew: true, timeout: 5000, ...options });
  sockets.add(socket);
  answerHeartbeats(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

function user(label) {
  const id = uid(label);
  return { id, token: token(id, { name: label }) };
}

/** How each contract joins the chat, sends (resolving when the send is answered) and shows a refusal. */
const contracts = {
  v3: {
    open: (edge, u) => connectTo(edge, '/v3', { auth: { token: u.token, profileid: u.id } }),
    async join(s, chat) {
      const joined = next(s, 'chat_joined');
      s.emit('join_chat', { chatid: chat });
      await joined;
    },
    /** Resolves with whether the send was refused (from its ack). */
    async send(s, chat, text) {
      const ack = await s.timeout(5000).emitWithAck('send_message', { chatid: chat, clientMessageId: `c-${text}`, messageType: 'text', content: text });
      if (ack.success) return false;
      assert.deepEqual(ack, { success: false, clientMessageId: `c-${text}`, error: ack.error, code: 'RATE_LIMITED', retryAfter: 1 });
      assert.match(ack.error, /at most 10 messages a second/);
      return true;
    },
    /** Listens for refusals as the seed's frontend does. */
    refusals: (s) => record(s, 'rate_limited'),
    checkRefusal(e) {
      assert.deepEqual(Object.keys(e).sort(), ['error', 'message', 'retryAfter']);
      assert.equal(e.error, 'rate_limited');
      assert.match(e.message, /at most 10 messages a second/);
      assert.equal(e.retryAfter, 1);
    },
  },
  raven: {
    open: (edge, u) => connectTo(edge, '/raven', { auth: { token: u.token } }),
    async join(s, chat) {
      const ack = await s.timeout(5000).emitWithAck('join_conversation', { conversation_id: chat });
      assert.equal(ack.success, true, JSON.stringify(ack));
    },
    /**
     * Resolves with whether the send was refused, from its ack (a confab
     * addition the seed's frontend ignores; it reads the `error` event,
     * checked by `refusals`), which tells which of several sends it was.
     */
    async send(s, chat, text) {
      const ack = await s.timeout(5000).emitWithAck('send_message', { conversation_id: chat, text });
      if (ack.success) return false;
      assert.equal(ack.error?.code, 'SEND_MESSAGE_FAILED', JSON.stringify(ack));
      assert.match(ack.error.details, /^LIMIT_EXCEEDED: /);
      assert.equal(ack.error.retryAfter, 1);
      return true;
    },
    refusals: (s) => record(s, 'error'),
    checkRefusal(e) {
      assert.deepEqual(Object.keys(e).sort(), ['code', 'details', 'message', 'retryAfter']);
      assert.equal(e.code, 'SEND_MESSAGE_FAILED');
      assert.equal(e.message, 'Failed to send message');
      assert.match(e.details, /^LIMIT_EXCEEDED: at most 10 messages a second/);
      assert.equal(e.retryAfter, 1);
    },
  },
};

/**
 * A sender with a v3 tab on edge A and a raven tab on edge B, and a
 * listener with a raven socket on each edge, all joined to one chat.
 */
async function setup(name) {
  const sender = user('sender');
  const listener = user('listener');
  const chat = await conversation(listener.token, [sender.id], name);
  const tabs = { v3: await contracts.v3.open(0, sender), raven: await contracts.raven.open(1, sender) };
  await contracts.v3.join(tabs.v3, chat);
  await contracts.raven.join(tabs.raven, chat);
  const ears = [await contracts.raven.open(0, listener), await contracts.raven.open(1, listener)];
  for (const s of ears) await contracts.raven.join(s, chat);
  return { sender, listener, chat, tabs, ears };
}

/** What the listener hears on each edge, from now on. */
function listen(ears) {
  const logs = ears.map((s) => record(s, 'new_message'));
  return {
    /** The texts heard on each edge. */
    texts: () => logs.map((l) => l.seen.map((m) => m.text)),
    /** Waits until every edge heard `n` messages. */
    async count(n, ms = 5000) {
      const deadline = Date.now() + ms;
      while (logs.some((l) => l.seen.length < n)) {
        if (Date.now() > deadline) {
          throw new Error(`the listener heard ${JSON.stringify(logs.map((l) => l.seen.length))} of ${n} messages on edges A and B`);
        }
        await sleep(20);
      }
    },
    /** Each edge heard exactly `expected`, each message once. */
    each(expected) {
      for (const [i, texts] of this.texts().entries()) {
        assert.deepEqual(sorted(texts), sorted(expected), `what edge ${'AB'[i]} heard`);
      }
    },
    stop: () => logs.forEach((l) => l.stop()),
  };
}

/** The texts stored in `chat` (the shared database, read through edge A). */
async function stored(chat, who) {
  const { status, body } = await rest('GET', `/api/conversations/${chat}/messages?limit=100`, who.token);
  assert.equal(status, 200, JSON.stringify(body));
  return body.messages.map((m) => m.text).sort();
}

const sorted = (texts) => [...texts].sort();

describe('the message rate limit across two edges and two chat-service replicas', () => {
  test('11 messages in one second from a v3 tab on edge A and a raven tab on edge B → 10 stored and delivered, exactly one refused in its contract\'s shape, then sending works again on both edges', async () => {
    const { listener, chat, tabs, ears } = await setup('burst across edges');
    const heard = listen(ears);
    const refusals = { v3: contracts.v3.refusals(tabs.v3), raven: contracts.raven.refusals(tabs.raven) };
    // Eleven sends at once, alternating between the edges (six v3, five raven).
    const texts = Array.from({ length: LIMIT + 1 }, (_, i) => `burst ${i}`);
    const via = (i) => (i % 2 === 0 ? 'v3' : 'raven');
    const started = Date.now();
    const answers = await Promise.all(texts.map((t, i) => contracts[via(i)].send(tabs[via(i)], chat, t)));
    const refusedTexts = texts.filter((_, i) => answers[i]);
    assert.equal(refusedTexts.length, 1, `refused: ${JSON.stringify(refusedTexts)} (the burst took ${Date.now() - started} ms)`);
    const refusedVia = via(texts.indexOf(refusedTexts[0]));

    // The refusal in its contract's shape, on that tab alone.
    await heard.count(LIMIT);
    await sleep(QUIET_MS);
    assert.equal(refusals[refusedVia].seen.length, 1, `${refusedVia}: ${JSON.stringify(refusals[refusedVia].seen)}`);
    contracts[refusedVia].checkRefusal(refusals[refusedVia].seen[0]);
    const other = refusedVia === 'v3' ? 'raven' : 'v3';
    assert.deepEqual(refusals[other].seen, [], `${other} refused nothing`);

    // Ten stored, ten delivered, the same ten, and not the refused one.
    const admitted = sorted(texts.filter((t) => !refusedTexts.includes(t)));
    heard.each(admitted);
    assert.deepEqual(await stored(chat, listener), admitted);

    // After the window, the user sends again through each edge.
    await sleep(WINDOW_MS);
    assert.equal(await contracts.v3.send(tabs.v3, chat, 'after the window (v3, edge A)'), false);
    assert.equal(await contracts.raven.send(tabs.raven, chat, 'after the window (raven, edge B)'), false);
    await heard.count(LIMIT + 2);
    await sleep(QUIET_MS);
    heard.each([...admitted, 'after the window (v3, edge A)', 'after the window (raven, edge B)']);
    assert.deepEqual(
      await stored(chat, listener),
      sorted([...admitted, 'after the window (v3, edge A)', 'after the window (raven, edge B)']),
    );
    heard.stop();
    Object.values(refusals).forEach((r) => r.stop());
  });

  for (const [last, edge] of [
    ['raven', 'B'],
    ['v3', 'A'],
  ]) {
    test(`ten sent through both edges, then the 11th within the second from ${last} on edge ${edge} → refused in ${last}'s shape, not stored or delivered; after the window ${last} sends again`, async () => {
      const { listener, chat, tabs, ears } = await setup(`eleventh via ${last}`);
      const heard = listen(ears);
      const refusals = contracts[last].refusals(tabs[last]);
      const started = Date.now();
      const first = Array.from({ length: LIMIT }, (_, i) => `first ${i}`);
      const via = (i) => (i % 2 === 0 ? 'v3' : 'raven');
      const answers = await Promise.all(first.map((t, i) => contracts[via(i)].send(tabs[via(i)], chat, t)));
      assert.deepEqual(answers, first.map(() => false), 'none of the first ten is refused');
      const elapsed = Date.now() - started;
      assert.ok(elapsed < WINDOW_MS - 100, `the first ten took ${elapsed} ms: too slow to send the 11th within the second`);

      assert.equal(await contracts[last].send(tabs[last], chat, 'the eleventh'), true, 'the 11th is refused');
      await heard.count(LIMIT);
      await sleep(QUIET_MS);
      assert.equal(refusals.seen.length, 1, JSON.stringify(refusals.seen));
      contracts[last].checkRefusal(refusals.seen[0]);
      heard.each(first);
      assert.deepEqual(await stored(chat, listener), sorted(first));

      await sleep(WINDOW_MS);
      assert.equal(await contracts[last].send(tabs[last], chat, 'after the window'), false);
      await heard.count(LIMIT + 1);
      await sleep(QUIET_MS);
      heard.each([...first, 'after the window']);
      assert.deepEqual(await stored(chat, listener), sorted([...first, 'after the window']));
      heard.stop();
      refusals.stop();
    });
  }
});
