// The `raven` contract (seed 002) with the official socket.io-client: every
// event and error code of the seed, two users in one conversation, refusals,
// both transports, the default namespace, and chat-service restarting under
// a running edge, and presence: a raven user's sockets seen online/offline
// by a peer on another contract (mern), and the per-user socket limit.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, connect, control, conversation, expectSilence, next, ready, refused, rest, sleep, token, uid } from './confab.mjs';

after(closeAll);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Two users, each connected, in one conversation both have joined. */
async function pair(options = {}) {
  const [a, b] = [uid('alice'), uid('bob')];
  const [ta, tb] = [token(a, { name: 'Alice' }), token(b, { name: 'Bob' })];
  const id = await conversation(ta, [b]);
  const sa = await connect('/raven', { auth: { token: ta }, ...options });
  const sb = await connect('/raven', { auth: { token: tb }, ...options });
  for (const s of [sa, sb]) {
    const ack = await s.emitWithAck('join_conversation', { conversation_id: id });
    assert.equal(ack.success, true, JSON.stringify(ack));
  }
  return { a, b, ta, tb, id, sa, sb };
}

describe('authentication', () => {
  test('no token: connect_error AUTHENTICATION_REQUIRED', async () => {
    const err = await refused('/raven', { transports: ['websocket'] });
    assert.equal(err.message, 'AUTHENTICATION_REQUIRED');
  });

  test('a token signed with another secret: INVALID_TOKEN', async () => {
    const err = await refused('/raven', { auth: { token: token('x', { secret: 'not-the-secret' }) } });
    assert.equal(err.message, 'INVALID_TOKEN');
  });

  test('garbage token: INVALID_TOKEN', async () => {
    const err = await refused('/raven', { auth: { token: 'abc.def' } });
    assert.equal(err.message, 'INVALID_TOKEN');
  });

  test('expired token: TOKEN_EXPIRED', async () => {
    const err = await refused('/raven', { auth: { token: token('x', { expiresIn: -3600 }) } });
    assert.equal(err.message, 'TOKEN_EXPIRED');
  });

  test('token from the Authorization header, the accessToken cookie and the query: the socket is that user', async () => {
    const [me, peer, other] = [uid('me'), uid('peer'), uid('other')];
    const t = token(me, { name: 'Me' });
    const id = await conversation(t, [peer]);
    /** Who the socket is: joining proves membership, sending shows the sender. */
    async function whoIs(s) {
      const joined = await s.emitWithAck('join_conversation', { conversation_id: id });
      assert.equal(joined.success, true, JSON.stringify(joined));
      const text = `who am i ${uid()}`;
      s.emit('send_message', { conversation_id: id, text });
      const m = await next(s, 'new_message');
      assert.equal(m.text, text);
      return m.senderId;
    }
    assert.equal(await whoIs(await connect('/raven', { extraHeaders: { Authorization: `Bearer ${t}` } })), me);
    assert.equal(await whoIs(await connect('/raven', { extraHeaders: { Cookie: `theme=dark; accessToken=${t}` } })), me);
    assert.equal(await whoIs(await connect('/raven', { query: { token: t } })), me);
    assert.equal(await whoIs(await connect('/raven', { transports: ['websocket'], query: { token: t } })), me);
    // The order of precedence: auth.token, then the header, the cookie, the query.
    const o = token(other);
    const mixed = [
      { auth: { token: t }, extraHeaders: { Authorization: `Bearer ${o}` }, query: { token: o } },
      { extraHeaders: { Authorization: `Bearer ${t}`, Cookie: `accessToken=${o}` }, query: { token: o } },
      { extraHeaders: { Cookie: `accessToken=${t}` }, query: { token: o } },
    ];
    for (const options of mixed) assert.equal(await whoIs(await connect('/raven', options)), me, JSON.stringify(options));
  });
});

describe('transports and namespaces', () => {
  test('websocket only, as the seed configures it', async () => {
    const { sa, sb, id } = await pair({ transports: ['websocket'] });
    assert.equal(sa.io.engine.transport.name, 'websocket');
    sa.emit('send_message', { conversation_id: id, text: 'over websocket' });
    assert.equal((await next(sb, 'new_message')).text, 'over websocket');
  });

  test('default transports: polling first, then upgrade to websocket', async () => {
    const { sa, sb, id } = await pair();
    const engine = sa.io.engine;
    if (engine.transport.name !== 'websocket') await new Promise((r) => engine.once('upgrade', r));
    assert.equal(engine.transport.name, 'websocket');
    sa.emit('send_message', { conversation_id: id, text: 'after upgrade' });
    assert.equal((await next(sb, 'new_message')).text, 'after upgrade');
  });

  test('the default namespace / speaks raven', async () => {
    const [a, b] = [uid(), uid()];
    const id = await conversation(token(a), [b]);
    const sa = await connect('/', { auth: { token: token(a) } });
    const sb = await connect('/raven', { auth: { token: token(b) } });
    await sa.emitWithAck('join_conversation', { conversation_id: id });
    await sb.emitWithAck('join_conversation', { conversation_id: id });
    sa.emit('send_message', { conversation_id: id, text: 'from /' });
    const [ma, mb] = await Promise.all([next(sa, 'new_message'), next(sb, 'new_message')]);
    assert.equal(ma.text, 'from /');
    assert.deepEqual(ma, mb);
  });
});

describe('messaging', () => {
  test('two clients: new_message reaches the room, the sender included, in the seed shape', async () => {
    const { a, sa, sb, id } = await pair();
    sa.emit('send_message', { conversation_id: id, text: 'Hello, everyone!' });
    const [ma, mb] = await Promise.all([next(sa, 'new_message'), next(sb, 'new_message')]);
    assert.deepEqual(ma, mb);
    assert.equal(typeof mb.id, 'string');
    assert.equal(mb.conversationId, id);
    assert.equal(mb.senderId, a);
    assert.equal(mb.senderName, 'Alice');
    assert.equal(mb.text, 'Hello, everyone!');
    assert.match(mb.createdAt, ISO);
    assert.equal(mb.url, undefined);
  });

  test('a file message carries url and fileName', async () => {
    const { sa, sb, id } = await pair();
    sa.emit('send_message', { conversation_id: id, url: 'https://cdn.example.com/files/document.pdf', fileName: 'document.pdf' });
    const m = await next(sb, 'new_message');
    assert.equal(m.url, 'https://cdn.example.com/files/document.pdf');
    assert.equal(m.fileName, 'document.pdf');
    assert.equal(m.text, undefined);
  });

  test('a numeric conversation_id is accepted', async () => {
    const { sa, sb, id } = await pair();
    sa.emit('send_message', { conversation_id: Number(id), text: 'numeric id' });
    assert.equal((await next(sb, 'new_message')).text, 'numeric id');
  });

  test('leave_conversation stops new_message for that socket', async () => {
    const { sa, sb, id } = await pair();
    const ack = await sb.emitWithAck('leave_conversation', { conversation_id: id });
    assert.equal(ack.success, true);
    const quiet = expectSilence(sb, 'new_message');
    sa.emit('send_message', { conversation_id: id, text: 'after leave' });
    await next(sa, 'new_message');
    await quiet;
  });

  test('a message posted over REST reaches sockets like a socket send', async () => {
    const { ta, sb, id } = await pair();
    // Listen first: the event can arrive before the REST response.
    const arriving = next(sb, 'new_message');
    const { status, body } = await rest('POST', `/api/conversations/${id}/messages`, ta, { text: 'via REST' });
    assert.equal(status, 201);
    const m = await arriving;
    assert.equal(m.id, body.id);
    assert.equal(m.text, 'via REST');
    const history = await rest('GET', `/api/conversations/${id}/messages?limit=10`, ta);
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.messages.map((x) => x.text), ['via REST']);
  });
});

describe('errors', () => {
  test("a non-member's join is refused with JOIN_FAILED and they hear nothing", async () => {
    const { sa, id } = await pair();
    const eve = await connect('/raven', { auth: { token: token(uid('eve')) } });
    const quiet = expectSilence(eve, 'new_message');
    eve.emit('join_conversation', { conversation_id: id });
    const err = await next(eve, 'error');
    assert.equal(err.code, 'JOIN_FAILED');
    assert.equal(err.message, 'Failed to join conversation');
    assert.match(err.details, /^NOT_A_MEMBER/);
    sa.emit('send_message', { conversation_id: id, text: 'members only' });
    await next(sa, 'new_message');
    await quiet;
    assert.equal(eve.connected, true);
  });

  test('join: unknown conversation, missing or malformed id', async () => {
    const s = await connect('/raven', { auth: { token: token(uid()) } });
    s.emit('join_conversation', { conversation_id: '999999999' });
    let err = await next(s, 'error');
    assert.equal(err.code, 'JOIN_FAILED');
    assert.match(err.details, /^CONVERSATION_NOT_FOUND/);
    s.emit('join_conversation', {});
    err = await next(s, 'error');
    assert.equal(err.code, 'JOIN_FAILED');
    assert.match(err.details, /^INVALID_ARGUMENT/);
    s.emit('join_conversation', { conversation_id: '507f1f77bcf86cd799439011' });
    err = await next(s, 'error');
    assert.equal(err.code, 'JOIN_FAILED');
    assert.match(err.details, /^INVALID_ARGUMENT/);
    s.emit('join_conversation');
    assert.equal((await next(s, 'error')).code, 'JOIN_FAILED');
    assert.equal(s.connected, true);
  });

  test('leave without conversation_id: LEAVE_FAILED', async () => {
    const s = await connect('/raven', { auth: { token: token(uid()) } });
    s.emit('leave_conversation', { conversation: 'x' });
    const err = await next(s, 'error');
    assert.equal(err.code, 'LEAVE_FAILED');
    assert.equal(err.message, 'Failed to leave conversation');
  });

  test('send: every refusal is SEND_MESSAGE_FAILED, nothing is stored, the socket stays up', async () => {
    const { ta, sa, id } = await pair();
    const cases = [
      [{ text: 'no conversation' }, /^INVALID_ARGUMENT/],
      [{ conversation_id: id }, /^EMPTY_MESSAGE/],
      [{ conversation_id: id, text: '   ' }, /^EMPTY_MESSAGE/],
      [{ conversation_id: id, text: 42 }, /^INVALID_ARGUMENT/],
      [{ conversation_id: id, text: 'x'.repeat(10 * 1024 + 1) }, /^MESSAGE_TOO_LONG/],
      [{ conversation_id: '999999999', text: 'nowhere' }, /^CONVERSATION_NOT_FOUND/],
    ];
    for (const [payload, details] of cases) {
      sa.emit('send_message', payload);
      const err = await next(sa, 'error');
      assert.equal(err.code, 'SEND_MESSAGE_FAILED', JSON.stringify(payload).slice(0, 80));
      assert.equal(err.message, 'Failed to send message');
      assert.match(err.details, details);
    }
    assert.equal(sa.connected, true);
    const history = await rest('GET', `/api/conversations/${id}/messages`, ta);
    assert.equal(history.body.messages.length, 0);
    sa.emit('send_message', { conversation_id: id, text: 'x'.repeat(10 * 1024) });
    assert.equal((await next(sa, 'new_message')).text.length, 10 * 1024);
  });

  test("a non-member's send is refused with NOT_A_MEMBER in details, and nobody hears it", async () => {
    const { sa, sb, id } = await pair();
    const eve = await connect('/raven', { auth: { token: token(uid('eve')) } });
    const quiet = expectSilence([sa, sb, eve], 'new_message');
    eve.emit('send_message', { conversation_id: id, text: 'let me in' });
    const err = await next(eve, 'error');
    assert.equal(err.code, 'SEND_MESSAGE_FAILED');
    assert.match(err.details, /^NOT_A_MEMBER/);
    await quiet;
  });

  test('REST refusals carry stable codes', async () => {
    const { id } = await pair();
    let r = await rest('GET', '/api/conversations');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'AUTHENTICATION_REQUIRED');
    r = await rest('GET', `/api/conversations/${id}/messages`, token(uid('eve')));
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'NOT_A_MEMBER');
    r = await rest('POST', '/api/conversations', token(uid()), { name: 'no members field' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_ARGUMENT');
  });
});

describe('presence', () => {
  // The seed sends raven clients no presence events; its server registers the
  // user online on connect and unregisters them on disconnect. A mern peer
  // who shares a conversation sees that as user_online / user_offline.
  test("a raven user's connect and disconnect are user_online / user_offline for a mern peer", async () => {
    const [r, m] = [uid('raven'), uid('mern')];
    const [tr, tm] = [token(r, { name: 'Raven' }), token(m, { name: 'Mern' })];
    await conversation(tm, [r]);
    const peer = await connect('/mern', { auth: { token: tm } });
    const stranger = await connect('/mern', { auth: { token: token(uid('eve')) } });

    let online = next(peer, 'user_online');
    const aloof = expectSilence(stranger, ['user_online', 'user_offline']);
    const sr1 = await connect('/raven', { auth: { token: tr }, transports: ['websocket'] });
    assert.deepEqual(await online, { userId: r, username: 'Raven' });

    // A second raven tab comes and goes: the user stays online, nothing is said.
    const quiet = expectSilence(peer, 'user_online');
    const sr2 = await connect('/raven', { auth: { token: tr } });
    await quiet;
    const stillOnline = expectSilence(peer, 'user_offline');
    sr2.disconnect();
    await stillOnline;

    const before = Date.now();
    const offline = next(peer, 'user_offline');
    sr1.disconnect();
    const { userId, username, lastSeen } = await offline;
    assert.deepEqual([userId, username], [r, 'Raven']);
    assert.match(lastSeen, ISO);
    assert.ok(Date.parse(lastSeen) >= before - 1000 && Date.parse(lastSeen) <= Date.now() + 1000, lastSeen);
    // Only the users who share a conversation heard any of it.
    await aloof;

    // Back again: online again.
    online = next(peer, 'user_online');
    await connect('/raven', { auth: { token: tr } });
    assert.equal((await online).userId, r);
  });

  test('the 11th socket of one user: connect_error TOO_MANY_CONNECTIONS; a closed one frees a slot', async () => {
    const t = token(uid());
    const tabs = [];
    for (let i = 0; i < 10; i++) tabs.push(await connect('/raven', { auth: { token: t } }));
    let err = await refused('/raven', { auth: { token: t } });
    assert.equal(err.message, 'TOO_MANY_CONNECTIONS');
    err = await refused('/raven', { auth: { token: t }, transports: ['websocket'] });
    assert.equal(err.message, 'TOO_MANY_CONNECTIONS');
    assert.ok(tabs.every((s) => s.connected));

    // The session ends a moment after the disconnect; retry until it has.
    tabs.pop().disconnect();
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        await connect('/raven', { auth: { token: t } });
        break;
      } catch (e) {
        assert.equal(e.message, 'TOO_MANY_CONNECTIONS');
        assert.ok(Date.now() < deadline, 'no socket slot freed within 3 s');
      }
    }
  });
});

describe('chat-service restarts under a running edge', { skip: !process.env.CONFAB_CONTROL_URL }, () => {
  test('while it is down, sends get an error (no hang); afterwards messages flow again', async () => {
    const { sa, sb, id } = await pair();
    await control('stop');
    try {
      sa.emit('send_message', { conversation_id: id, text: 'into the void' });
      const err = await next(sa, 'error', 8000);
      assert.equal(err.code, 'SEND_MESSAGE_FAILED');
      assert.match(err.details, /^UNAVAILABLE/);
      assert.equal(sa.connected, true);
    } finally {
      await control('start');
    }
    await ready();
    sa.emit('send_message', { conversation_id: id, text: 'back again' });
    const [ma, mb] = await Promise.all([next(sa, 'new_message', 5000), next(sb, 'new_message', 5000)]);
    assert.equal(ma.text, 'back again');
    assert.equal(mb.text, 'back again');
  });
});

// erion-raven's published frontend (apps/web/src/store/useSocketStore.ts,
// apps/web/src/hooks/useConversationNavigation.tsx, payloads from
// packages/types/src/socket.ts), replayed as it really talks: an httpOnly
// accessToken cookie whose claims are {userId, email, username}, the URL's
// origin only (the default namespace), websocket then polling, no acks.
describe('real client: erion-raven', () => {
  /** A raven app user: the cookie's token carries userId/email/username, no sub. */
  function account(label) {
    const id = uid(label);
    const username = `${label}_${id.slice(-4)}`;
    const tok = token(undefined, { extra: { userId: id, email: `${id}@example.com`, username } });
    return { id, username, tok };
  }
  /** Connects exactly as useSocketStore does (Node sends the cookie as a header). */
  const app = (u) =>
    connect('/', {
      transports: ['websocket', 'polling'],
      reconnection: false,
      timeout: 10000,
      withCredentials: true,
      extraHeaders: { cookie: `accessToken=${u.tok}` },
    });
  // createSendMessagePayload: absent fields are null.
  const sendPayload = (conversationId, text, url, fileName) => ({
    conversation_id: conversationId,
    text: text || null,
    url: url || null,
    fileName: fileName || null,
  });

  test('switching conversations: leave → left_conversation → join → joined_conversation, then only the new one is heard', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const first = await conversation(token(me.id), [peer.id], 'first');
    const second = await conversation(token(me.id), [peer.id], 'second');
    const [s, p] = [await app(me), await app(peer)];
    for (const id of [first, second]) {
      const joined = next(p, 'joined_conversation');
      p.emit('join_conversation', { conversation_id: id });
      await joined;
    }

    // First join, as useConversationNavigation does it.
    let joined = next(s, 'joined_conversation');
    s.emit('join_conversation', { conversation_id: first });
    assert.deepEqual(await joined, { conversation_id: first, user_id: me.id, username: me.username });

    // Switch: leave the previous one and wait for its ack before joining the next.
    const left = next(s, 'left_conversation');
    s.emit('leave_conversation', { conversation_id: first });
    const ack = await left;
    assert.deepEqual(ack, { conversation_id: first, user_id: me.id, username: me.username });
    assert.equal(ack.conversation_id, String(first)); // the app's `detail.conversationId !== prevId`
    joined = next(s, 'joined_conversation');
    s.emit('join_conversation', { conversation_id: second });
    assert.deepEqual(await joined, { conversation_id: second, user_id: me.id, username: me.username });

    // The new conversation's messages arrive; the old one's no longer do.
    const old = expectSilence(s, 'new_message', { where: (m) => m.conversationId === first });
    p.emit('send_message', sendPayload(first, 'in the old one'));
    await next(p, 'new_message');
    const got = next(s, 'new_message');
    p.emit('send_message', sendPayload(second, 'in the new one'));
    const m = await got;
    assert.equal(m.conversationId, second);
    assert.equal(m.text, 'in the new one');
    await old;
  });

  test('user_joined / user_left reach the others in the room, never the user', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const id = await conversation(token(me.id), [peer.id]);
    const [s, p] = [await app(me), await app(peer)];
    const pj = next(p, 'joined_conversation');
    p.emit('join_conversation', { conversation_id: id });
    await pj;

    const self = expectSilence(s, ['user_joined', 'user_left']);
    const joined = next(p, 'user_joined');
    s.emit('join_conversation', { conversation_id: id });
    assert.deepEqual(await joined, { conversation_id: id, user_id: me.id, username: me.username });
    const left = next(p, 'user_left');
    s.emit('leave_conversation', { conversation_id: id });
    assert.deepEqual(await left, { conversation_id: id, user_id: me.id, username: me.username });
    await self;
  });

  test('leaving a conversation the socket is not in still answers left_conversation (and tells nobody)', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const id = await conversation(token(me.id), [peer.id]);
    const [s, p] = [await app(me), await app(peer)];
    const pj = next(p, 'joined_conversation');
    p.emit('join_conversation', { conversation_id: id });
    await pj;
    const nobody = expectSilence(p, 'user_left');
    const left = next(s, 'left_conversation');
    s.emit('leave_conversation', { conversation_id: id });
    assert.deepEqual(await left, { conversation_id: id, user_id: me.id, username: me.username });
    await nobody;
  });

  test('a refused join gets error JOIN_FAILED and no joined_conversation', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const id = await conversation(token(peer.id), [uid('other')]);
    const s = await app(me);
    const quiet = expectSilence(s, 'joined_conversation');
    s.emit('join_conversation', { conversation_id: id });
    const err = await next(s, 'error');
    assert.equal(err.code, 'JOIN_FAILED');
    assert.match(err.details, /^NOT_A_MEMBER/);
    await quiet;
  });

  test('messages as createSendMessagePayload builds them (nulls for absent fields)', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const id = await conversation(token(me.id), [peer.id]);
    const [s, p] = [await app(me), await app(peer)];
    for (const sock of [s, p]) {
      const j = next(sock, 'joined_conversation');
      sock.emit('join_conversation', { conversation_id: id });
      await j;
    }
    let got = next(p, 'new_message');
    s.emit('send_message', sendPayload(id, 'hello'));
    let m = await got;
    assert.equal(m.text, 'hello');
    assert.equal(m.senderId, me.id);
    assert.equal(m.senderName, me.username);
    got = next(p, 'new_message');
    s.emit('send_message', sendPayload(id, '', 'https://cdn.example.com/a.pdf', 'a.pdf'));
    m = await got;
    assert.deepEqual([m.text, m.url, m.fileName], [undefined, 'https://cdn.example.com/a.pdf', 'a.pdf']);
  });

  test('friend_status_changed {user_id, status, timestamp} tells the peers when a user comes online and goes offline', async () => {
    const [me, peer] = [account('me'), account('peer')];
    await conversation(token(peer.id), [me.id]);
    const p = await app(peer);
    const stranger = await app(account('eve'));
    const aloof = expectSilence(stranger, 'friend_status_changed');

    const before = Date.now();
    const online = next(p, 'friend_status_changed');
    const s = await app(me);
    const on = await online;
    assert.deepEqual(Object.keys(on).sort(), ['status', 'timestamp', 'user_id']);
    assert.deepEqual([on.user_id, on.status], [me.id, 'online']);
    assert.equal(typeof on.timestamp, 'number');
    assert.ok(on.timestamp >= before - 1000 && on.timestamp <= Date.now() + 1000, String(on.timestamp));

    // A second tab and closing one of two say nothing.
    let quiet = expectSilence(p, 'friend_status_changed');
    const s2 = await app(me);
    s2.disconnect();
    await quiet;

    const offline = next(p, 'friend_status_changed');
    s.disconnect();
    const off = await offline;
    assert.deepEqual([off.user_id, off.status], [me.id, 'offline']);
    assert.ok(off.timestamp >= on.timestamp, String(off.timestamp));
    await aloof;
  });

  test('heartbeat {timestamp} is accepted silently and never drops the socket', async () => {
    const [me, peer] = [account('me'), account('peer')];
    const id = await conversation(token(me.id), [peer.id]);
    const s = await app(me);
    const quiet = expectSilence(s, ['error', 'disconnect']);
    for (let i = 0; i < 3; i++) s.emit('heartbeat', { timestamp: Date.now() });
    await quiet;
    assert.equal(s.connected, true);
    const j = next(s, 'joined_conversation');
    s.emit('join_conversation', { conversation_id: id });
    await j;
    const got = next(s, 'new_message');
    s.emit('send_message', sendPayload(id, 'still here'));
    assert.equal((await got).text, 'still here');
  });
});

describe('token expiry during a connection', () => {
  test('requests on an expired socket get error TOKEN_EXPIRED; refresh_token on the same socket makes them work; another user\'s token disconnects', async () => {
    const [a, b] = [uid('alice'), uid('bob')];
    const tb = token(b, { name: 'Bob' });
    const id = await conversation(token(a, { name: 'Alice' }), [b]);
    // `exp` 3 s ago: accepted at the handshake (5 s leeway), refused 2 s later.
    const sa = await connect('/raven', { auth: { token: token(a, { name: 'Alice', expiresIn: -3 }) } });
    const sb = await connect('/raven', { auth: { token: tb } });
    assert.equal((await sb.emitWithAck('join_conversation', { conversation_id: id })).success, true);
    await sleep(2500);
    const sid = sa.id;
    const quiet = expectSilence(sb, ['new_message', 'user_joined']);
    const error = next(sa, 'error');
    const ack = await sa.timeout(3000).emitWithAck('send_message', { conversation_id: id, text: 'too late' });
    const expired = {
      code: 'TOKEN_EXPIRED',
      message: 'Token has expired',
      details: 'TOKEN_EXPIRED: the token has expired; send refresh_token {token}',
    };
    assert.deepEqual(ack, { success: false, error: expired });
    assert.deepEqual(await error, expired);
    const joinError = next(sa, 'error');
    sa.emit('join_conversation', { conversation_id: id });
    assert.equal((await joinError).code, 'TOKEN_EXPIRED');
    await quiet;
    const { body } = await rest('GET', `/api/conversations/${id}/messages`, tb);
    assert.deepEqual(body.messages, []);

    // A fresh token: acked, and the same socket joins and sends.
    const refreshed = await sa.timeout(3000).emitWithAck('refresh_token', { token: token(a, { name: 'Alice' }) });
    assert.equal(refreshed.success, true, JSON.stringify(refreshed));
    assert.match(refreshed.data.expiresAt, ISO);
    assert.equal(sa.id, sid);
    assert.equal((await sa.timeout(3000).emitWithAck('join_conversation', { conversation_id: id })).success, true);
    const got = next(sb, 'new_message');
    assert.equal((await sa.timeout(3000).emitWithAck('send_message', { conversation_id: id, text: 'in time' })).success, true);
    assert.equal((await got).text, 'in time');

    // Another user's token: error USER_MISMATCH, then disconnected.
    const mismatch = next(sa, 'error');
    const gone = next(sa, 'disconnect');
    sa.emit('refresh_token', { token: tb });
    assert.equal((await mismatch).code, 'USER_MISMATCH');
    assert.equal(await gone, 'io server disconnect');
  });
});
