// Helpers shared by the contract suites: tokens, connecting with the official
// socket.io-client, waiting for events with a deadline, the REST API, and
// chat-service's test controls. The Rust harness (tests/src/app.rs) starts
// confab and passes CONFAB_URL, CONFAB_JWT_SECRET and CONFAB_CONTROL_URL
// (and CONFAB_URL2, a second edge, to suites that span edges).
import { createHmac, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';

export const URL = process.env.CONFAB_URL ?? 'http://127.0.0.1:3000';
/** A second edge on the same services, for suites that span edges (or ''). */
export const URL2 = process.env.CONFAB_URL2 ?? '';
const SECRET = process.env.CONFAB_JWT_SECRET ?? '';
const CONTROL = process.env.CONFAB_CONTROL_URL ?? '';

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT for `sub`; `expiresIn` seconds (negative: already expired). */
export function token(sub, { name, expiresIn = 3600, secret = SECRET, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name, iat: now, exp: now + expiresIn, ...extra })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** A user id unique to this run, so suites never share state. */
export function uid(label = 'u') {
  return `${label}${randomBytes(4).toString('hex')}`;
}

const opened = new Set();

/**
 * A socket.io-client socket that is connecting but not yet connected, for
 * tests that must listen before the handshake ends (an `error` event sent
 * right after it, say). `connected(socket)` then waits for the handshake.
 * `options.base` is the edge (default URL; e.g. URL2).
 */
export function open(namespace = '/raven', { base = URL, ...options } = {}) {
  const socket = io(base + namespace, { reconnection: false, forceNew: true, timeout: 5000, ...options });
  opened.add(socket);
  answerHeartbeats(socket);
  return socket;
}

/** How often the test app's v3 server sends `ping` / `heartbeat` (ms). */
export const HEARTBEAT_MS = Number(process.env.CONFAB_HEARTBEAT_MS ?? 25000);

/**
 * Answers the v3 server's `ping` with `pong` and `heartbeat` with
 * `heartbeat_response`, as a live frontend does: the server drops a socket
 * that leaves three in a row unanswered. (Other contracts never send them.)
 * `stopAnsweringHeartbeats(socket)` makes the socket go quiet.
 */
export function answerHeartbeats(socket) {
  socket.on('ping', pong);
  socket.on('heartbeat', heartbeatResponse);
}

export function stopAnsweringHeartbeats(socket) {
  socket.off('ping', pong);
  socket.off('heartbeat', heartbeatResponse);
}

function pong(timestamp) {
  this.emit('pong', timestamp);
}

function heartbeatResponse(beat) {
  this.emit('heartbeat_response', { timestamp: beat?.timestamp, clientTime: new Date() });
}

/** Resolves once `socket` is connected, rejects with its connect_error. */
export function connected(socket) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => reject(err));
  });
}

/** Connects with socket.io-client; resolves once connected, rejects with connect_error. */
export function connect(namespace = '/raven', options = {}) {
  return connected(open(namespace, options));
}

/** The connect_error a handshake gets (fails if it connects instead). */
export async function refused(namespace, options = {}) {
  try {
    const s = await connect(namespace, options);
    s.disconnect();
  } catch (err) {
    return err;
  }
  throw new Error('connection was accepted but should have been refused');
}

export function closeAll() {
  for (const s of opened) s.disconnect();
  opened.clear();
}

/** The next `event` on `socket` (its first argument), or a failure after `ms`. */
export function next(socket, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const on = (payload) => {
      clearTimeout(timer);
      resolve(payload);
    };
    socket.once(event, on);
  });
}

/**
 * The next `event` on `socket` whose payload passes `pred` (others are
 * skipped), or a failure after `ms`.
 */
export function nextWhere(socket, event, pred, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no matching '${event}' within ${ms} ms`));
    }, ms);
    const on = (payload) => {
      if (!pred(payload)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(payload);
    };
    socket.on(event, on);
  });
}

/**
 * How long an absence check keeps listening after its action, in ms.
 *
 * A forbidden event, if the server sent it, would arrive as fast as a
 * wanted one. Measured on this project's 2-core machine against a debug
 * build of the all-in-one `confab` (the tests boot the same code), with two
 * contract suites running beside the measurement
 * (tests/js/measure-delivery.mjs, three runs of 400 tries per path),
 * action → event on another socket took:
 *
 *   message  (raven send → new_message)       p50 4.9–7.5  p99 24.5–44.8  max 70.9 ms
 *   typing   (mern typing → typing_status)    p50 4.2–5.1  p99 47.6–53.5  max 66.0 ms
 *   presence (first socket → user_online)     p50 7.7–15.4 p99 57.9–61.9  max 66.5 ms
 *
 * (idle, one run: max 47.1 / 53.9 / 54.6 ms). QUIET_MS is more than four
 * times the worst of those; tests/README.md has the figures and how to
 * measure again.
 */
export const QUIET_MS = 300;

/**
 * An absence check: listens for `event` (or any of several events) on
 * `socket` (or several sockets) from the moment it is called. Awaiting it
 * waits `ms` more (QUIET_MS by default) and fails if a matching event
 * arrived at any time since the call. So: create it BEFORE the action that
 * could cause the event, await it AFTER the action:
 *
 *   const quiet = expectSilence(eve, 'new_message');
 *   alice.emit('send_message', …);
 *   await next(alice, 'new_message');
 *   await quiet;
 *
 * `where(payload)` narrows what counts (other events pass unremarked).
 */
export function expectSilence(sockets, events, { ms = QUIET_MS, where = () => true } = {}) {
  const targets = (Array.isArray(sockets) ? sockets : [sockets]).flatMap((s) =>
    (Array.isArray(events) ? events : [events]).map((e) => [s, e]),
  );
  const seen = [];
  let fail = null;
  const listeners = targets.map(([socket, event]) => {
    const on = (payload) => {
      if (!where(payload)) return;
      seen.push(`'${event}' ${JSON.stringify(payload)}`);
      fail?.();
    };
    socket.on(event, on);
    return () => socket.off(event, on);
  });
  let outcome;
  const check = () =>
    new Promise((resolve, reject) => {
      const done = (err) => {
        clearTimeout(timer);
        for (const off of listeners) off();
        if (err) reject(err);
        else resolve();
      };
      fail = () => done(new Error(`expected no ${[events].flat().join('/')}, got ${seen.join(', ')}`));
      const timer = setTimeout(() => done(), ms);
      if (seen.length) fail();
    });
  return {
    then(resolve, reject) {
      outcome ??= check();
      return outcome.then(resolve, reject);
    },
  };
}

/**
 * Records every `event` on `socket` from now on, for tests that count what
 * a user actually received: `log.seen` holds the payloads, `await
 * log.count(n)` waits until `n` have arrived in all (failing after `ms`),
 * `log.stop()` stops listening. To show that nothing more came, wait
 * QUIET_MS after the last action and compare `log.seen.length` with the
 * number expected (never with a count taken after the action).
 */
export function record(socket, event) {
  const seen = [];
  const waiters = new Set();
  const on = (payload) => {
    seen.push(payload);
    for (const w of [...waiters]) w();
  };
  socket.on(event, on);
  return {
    seen,
    count(n, ms = 3000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`only ${seen.length} of ${n} '${event}' within ${ms} ms`));
        }, ms);
        const check = () => {
          if (seen.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(seen.slice());
        };
        waiters.add(check);
        check();
      });
    },
    stop: () => socket.off(event, on),
  };
}

/** Calls the REST API; resolves to {status, body}. */
export async function rest(method, path, tok, body) {
  const headers = { 'content-type': 'application/json' };
  if (tok) headers.authorization = `Bearer ${tok}`;
  const res = await fetch(URL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Creates a conversation over REST as `owner` with `members`; returns its id. */
export async function conversation(ownerToken, members, name = 'test') {
  const { status, body } = await rest('POST', '/api/conversations', ownerToken, { members, name });
  if (status !== 201) throw new Error(`create conversation: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

/** Stops or starts chat-service (only under the Rust harness). */
export async function control(action) {
  if (!CONTROL) throw new Error('CONFAB_CONTROL_URL is not set');
  const res = await fetch(`${CONTROL}/chat/${action}`, { method: 'POST' });
  const text = await res.text();
  if (!res.ok || !['started', 'stopped'].includes(text)) throw new Error(`control ${action}: ${res.status} ${text}`);
}

/** Waits until /readyz says the edge follows chat-service again. */
export async function ready(ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await fetch(`${URL}/readyz`).catch(() => null);
    if (res?.ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('edge not ready');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * How each contract's frontend joins a conversation (`join(socket, id)`,
 * resolving once joined) and hears a message (`event`, and its `text`).
 */
export const MESSAGING = {
  raven: {
    join: async (s, id) => {
      const joined = nextWhere(s, 'joined_conversation', (d) => String(d.conversation_id) === String(id));
      s.emit('join_conversation', { conversation_id: id });
      await joined;
    },
    event: 'new_message',
    text: (d) => d.text,
  },
  mern: {
    join: async (s, id) => {
      const ack = await s.emitWithAck('join_conversations', [id]);
      if (!ack.success) throw new Error(`join_conversations: ${JSON.stringify(ack)}`);
    },
    event: 'receive_message',
    text: (d) => d.message?.content,
  },
  v3: {
    join: async (s, id) => {
      const joined = nextWhere(s, 'chat_joined', (d) => String(d.chatid) === String(id));
      s.emit('join_chat', { chatid: id });
      await joined;
    },
    event: 'new_message',
    text: (d) => d.message?.content,
  },
  // Every socket of every member hears a message: no room to join.
  hvtsocial: {
    join: async () => {},
    event: 'receive_message',
    text: (d) => d.text,
  },
  dreamstudio: {
    join: async (s, id) => {
      const joined = nextWhere(s, 'member:joined', (d) => String(d.roomId) === String(id));
      s.emit('join_room', { roomId: id });
      await joined;
    },
    event: 'message:new',
    text: (d) => d.content,
  },
};

/**
 * Posts `text` over REST to the first of `bases` that answers, with `text`
 * as its `clientMessageId` too, so a post retried after one that was
 * stored but not answered is the same message; whether one stored it.
 */
export async function postOnce(bases, tok, id, text) {
  for (const base of bases) {
    try {
      const res = await fetch(`${base}/api/conversations/${id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}` },
        body: JSON.stringify({ text, clientMessageId: text }),
        signal: AbortSignal.timeout(3000),
      });
      if (res.status === 201) return true;
    } catch {
      // That server is down: the next one.
    }
  }
  return false;
}

/**
 * One socket per contract (`users`: contract → user id) on URL, each an
 * official client reconnecting by itself within 200–400 ms, connected and
 * in conversation `id`. Each records the texts it hears, its reconnects and
 * how many were recovered; one that was not joins again, as a frontend
 * does on connect. `closeAll` closes them.
 */
export async function recipients(users, id) {
  const clients = {};
  for (const [ns, user] of Object.entries(users)) {
    const s = io(`${URL}/${ns}`, {
      auth: { token: token(user) },
      forceNew: true,
      reconnectionDelay: 200,
      reconnectionDelayMax: 400,
    });
    answerHeartbeats(s);
    opened.add(s);
    const c = { s, texts: [], reconnects: 0, recovered: 0, first: true };
    s.on(MESSAGING[ns].event, (d) => c.texts.push(MESSAGING[ns].text(d)));
    s.on('connect', () => {
      if (!c.first) {
        c.reconnects++;
        if (s.recovered) c.recovered++;
        else MESSAGING[ns].join(s, id).catch(() => {});
      }
      c.first = false;
    });
    await new Promise((r) => s.once('connect', r));
    await MESSAGING[ns].join(s, id);
    clients[ns] = c;
  }
  return clients;
}
