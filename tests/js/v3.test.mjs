// The `v3` contract (seed 003) with the official socket.io-client: the
// handshake (accessToken cookie + auth.profileid) with `authenticated` /
// `auth_error`, chat rooms, messaging with acks and idempotent retries,
// delivery and read receipts, reactions, every error shape, two v3 clients
// in one chat, and a v3 user talking with a raven user.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  HEARTBEAT_MS,
  QUIET_MS,
  URL,
  answerHeartbeats,
  closeAll,
  connect,
  connected,
  conversation,
  expectSilence,
  next,
  open,
  record,
  refused,
  rest,
  sleep,
  stopAnsweringHeartbeats,
  token,
  uid,
} from './confab.mjs';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ID = /^\d+$/;

const mine = new Set();
after(() => {
  for (const s of mine) s.disconnect();
  closeAll();
});

/** A user: id, name, login name and token. */
function user(label = 'u', name = label[0].toUpperCase() + label.slice(1)) {
  const id = uid(label);
  const username = `${label}_${id.slice(-4)}`;
  return { id, name, username, token: token(id, { name, extra: { username } }) };
}

/** A socket.io-client socket on /v3 (not yet connected-and-authenticated). */
function socket(namespace, options) {
  const s = io(URL + namespace, { reconnection: false, forceNew: true, timeout: 5000, withCredentials: true, ...options });
  mine.add(s);
  answerHeartbeats(s);
  return s;
}

/**
 * Connects as the seed's frontend does (accessToken cookie, auth {profileid,
 * timestamp}); resolves with the socket and its `authenticated` payload.
 * The listeners are in place before the connection opens, so nothing is missed.
 */
function v3(u, options = {}, namespace = '/v3', prepare = () => {}) {
  const s = socket(namespace, {
    // Lower-case: in Node the client's cookie jar sets `cookie` for websockets.
    extraHeaders: { cookie: `theme=dark; accessToken=${u.token}` },
    auth: { profileid: u.id, timestamp: Date.now() },
    ...options,
  });
  // Listeners that must be in place before the handshake.
  prepare(s);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no authenticated within 3000 ms')), 3000);
    s.once('authenticated', (hello) => {
      clearTimeout(timer);
      resolve({ s, hello });
    });
    s.once('auth_error', (e) => reject(new Error(`auth_error ${JSON.stringify(e)}`)));
    s.once('connect_error', reject);
  });
}

/** The `auth_error` a refused handshake gets, and that it is then disconnected. */
function authError(options) {
  const s = socket('/v3', options);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no auth_error within 3000 ms')), 3000);
    s.once('authenticated', () => reject(new Error('authenticated but should have been refused')));
    s.once('auth_error', (payload) => {
      s.once('disconnect', (reason) => {
        clearTimeout(timer);
        resolve({ payload, reason });
      });
    });
  });
}

/** An emit with an ack, failing after `ms`. */
const ask = (s, event, payload, ms = 3000) => s.timeout(ms).emitWithAck(event, payload);

/** The next `n` payloads of `event`. */
function collect(s, event, n, ms = 3000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => {
      s.off(event, on);
      reject(new Error(`only ${got.length} of ${n} '${event}' within ${ms} ms`));
    }, ms);
    const on = (p) => {
      got.push(p);
      if (got.length === n) {
        clearTimeout(timer);
        s.off(event, on);
        resolve(got);
      }
    };
    s.on(event, on);
  });
}

/** Joins a chat as the seed's frontend does; resolves with `chat_joined`. */
async function join(s, chatid) {
  const joined = next(s, 'chat_joined');
  s.emit('join_chat', { chatid });
  return joined;
}

/** Alice and Bob, connected, in one group chat both have joined. */
async function pair(options = {}) {
  const alice = user('alice');
  const bob = user('bob');
  const chatid = await conversation(alice.token, [bob.id], 'Team chat');
  const { s: sa } = await v3(alice, options);
  const { s: sb } = await v3(bob, options);
  await join(sa, chatid);
  const announced = next(sa, 'user_joined_chat');
  await join(sb, chatid);
  await announced;
  return { alice, bob, chatid, sa, sb };
}

let seq = 0;
const cid = () => `cm-${Date.now()}-${++seq}`;

async function history(tok, chatid) {
  const { status, body } = await rest('GET', `/api/conversations/${chatid}/messages?limit=100`, tok);
  assert.equal(status, 200);
  return body.messages;
}

describe('connection and authentication', () => {
  test('accessToken cookie + auth.profileid: authenticated in the seed shape', async () => {
    const alice = user('alice');
    const { s, hello } = await v3(alice);
    assert.equal(s.connected, true);
    assert.deepEqual(hello.user, { id: alice.id, username: alice.username, email: '', permissions: {} });
    assert.deepEqual(hello.profile, { profileid: alice.id, username: alice.username, displayname: 'Alice', avatar: '' });
    assert.deepEqual(hello.security, { riskScore: 0, deviceTrusted: false, deviceFingerprint: '' });
    assert.match(hello.session.connectedAt, ISO);
    assert.match(hello.session.expiresAt, ISO);
    const ttl = Date.parse(hello.session.expiresAt) - Date.now();
    assert.ok(ttl > 3500 * 1000 && ttl <= 3600 * 1000, `expiresAt ${hello.session.expiresAt}`);
  });

  test('auth.token works too; without a username claim the name stands in', async () => {
    const id = uid('carol');
    const { hello } = await v3({ id, token: 'unused' }, { extraHeaders: {}, auth: { token: token(id, { name: 'Carol' }), profileid: id } });
    assert.equal(hello.profile.profileid, id);
    assert.equal(hello.profile.username, 'Carol');
    assert.equal(hello.profile.displayname, 'Carol');
    assert.match(hello.session.expiresAt, ISO);
  });

  test('websocket only, and the default namespace / speaks v3', async () => {
    const alice = user('alice');
    const { s } = await v3(alice, { transports: ['websocket'] });
    assert.equal(s.io.engine.transport.name, 'websocket');
    const { hello } = await v3(alice, {}, '/');
    assert.equal(hello.profile.profileid, alice.id);
  });

  test('a profileid other than the token subject is refused', async () => {
    const alice = user('alice');
    const err = await refused('/v3', {
      extraHeaders: { cookie: `accessToken=${alice.token}` },
      auth: { profileid: uid('mallory'), timestamp: Date.now() },
    });
    assert.equal(err.message, 'PROFILE_MISMATCH');
  });

  test('a numeric profileid matches a numeric subject', async () => {
    const id = String(100000 + Math.floor(Math.random() * 800000));
    const t = token(id, { name: 'Num' });
    const { hello } = await v3({ id, token: t }, { auth: { profileid: Number(id), timestamp: Date.now() } });
    assert.equal(hello.user.id, id);
  });

  test('no token: auth_error AUTHENTICATION_REQUIRED, then disconnected', async () => {
    const { payload, reason } = await authError({ auth: { profileid: 'x', timestamp: Date.now() } });
    assert.equal(payload.error, 'AUTHENTICATION_REQUIRED');
    assert.equal(typeof payload.message, 'string');
    assert.equal(reason, 'io server disconnect');
  });

  test('bad and expired tokens: auth_error INVALID_TOKEN / TOKEN_EXPIRED', async () => {
    let r = await authError({ extraHeaders: { cookie: `accessToken=${token('x', { secret: 'wrong' })}` } });
    assert.equal(r.payload.error, 'INVALID_TOKEN');
    r = await authError({ auth: { token: 'abc.def' } });
    assert.equal(r.payload.error, 'INVALID_TOKEN');
    r = await authError({ extraHeaders: { cookie: `accessToken=${token('x', { expiresIn: -3600 })}` } });
    assert.equal(r.payload.error, 'TOKEN_EXPIRED');
  });
});

describe('chat rooms', () => {
  test('join_chat: chat_joined with role, permissions and chatInfo', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Team chat');
    const { s: sa } = await v3(alice);
    const { s: sb } = await v3(bob);
    assert.deepEqual(await join(sa, chatid), {
      chatid,
      role: 'owner',
      permissions: { canSendMessages: true, canAddMembers: true, canRemoveMembers: true, canEditSettings: true },
      chatInfo: { chatName: 'Team chat', chatType: 'group', participantCount: 2, settings: {} },
    });
    const joined = await join(sb, chatid);
    assert.equal(joined.role, 'member');
    assert.deepEqual(joined.permissions, { canSendMessages: true, canAddMembers: true, canRemoveMembers: false, canEditSettings: false });
  });

  test('join_chat with a plain string or a number; a direct chat', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], '');
    const { s } = await v3(bob);
    let joined = next(s, 'chat_joined');
    s.emit('join_chat', chatid);
    assert.equal((await joined).chatInfo.chatType, 'direct');
    joined = next(s, 'chat_joined');
    s.emit('join_chat', Number(chatid));
    const j = await joined;
    assert.equal(j.chatid, chatid);
    assert.equal(j.permissions.canAddMembers, false);
    const ack = await ask(s, 'join_chat', { chatid });
    assert.equal(ack.success, true);
    assert.equal(ack.chatid, chatid);
  });

  test('user_joined_chat reaches the others, not the joiner', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'x');
    const { s: sa } = await v3(alice);
    const { s: sb } = await v3(bob);
    await join(sa, chatid);
    const seen = next(sa, 'user_joined_chat');
    const quiet = expectSilence(sb, 'user_joined_chat');
    await join(sb, chatid);
    const j = await seen;
    assert.equal(j.profileid, bob.id);
    assert.equal(j.username, bob.username);
    assert.equal(j.role, 'member');
    assert.equal(j.isOnline, true);
    assert.match(j.joinedAt, ISO);
    await quiet;
    // Joining again announces nothing new.
    const again = expectSilence([sa, sb], 'user_joined_chat');
    await join(sb, chatid);
    await again;
  });

  test('leave_chat: user_left to the others, and no more new_message', async () => {
    const { bob, chatid, sa, sb } = await pair();
    const left = next(sa, 'user_left');
    const gone = expectSilence(sb, 'new_message');
    sb.emit('leave_chat', { chatid });
    assert.deepEqual(await left, { profileid: bob.id, username: bob.username });
    const mine = next(sa, 'new_message');
    sa.emit('send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'after leave' });
    await mine;
    await gone;
    // Leaving a chat one is not in is silent; the plain string form works.
    const quiet = expectSilence([sa, sb], 'user_left');
    const ack = await ask(sb, 'leave_chat', chatid);
    assert.deepEqual(ack, { success: true, chatid });
    await quiet;
  });

  test('a disconnecting member is user_left for the others', async () => {
    const { bob, sa, sb } = await pair();
    const left = next(sa, 'user_left');
    sb.disconnect();
    assert.equal((await left).profileid, bob.id);
  });

  test("join errors: not a participant, unknown chat, missing or malformed id — chat_error, connection stays", async () => {
    const { chatid, sa, sb } = await pair();
    const { s: eve } = await v3(user('eve'));
    // A refused join is announced to nobody, and the refused socket hears nothing of the chat.
    const unannounced = expectSilence([sa, sb, eve], 'user_joined_chat');
    const unheard = expectSilence(eve, 'new_message');
    const cases = [
      [{ chatid }, 'NOT_A_MEMBER', chatid],
      [{ chatid: '999999999' }, 'CONVERSATION_NOT_FOUND', '999999999'],
      [{}, 'INVALID_ARGUMENT', undefined],
      [{ chatid: '' }, 'INVALID_ARGUMENT', undefined],
      [{ chatid: '507f1f77bcf86cd799439011' }, 'INVALID_ARGUMENT', '507f1f77bcf86cd799439011'],
      [[1, 2], 'INVALID_ARGUMENT', undefined],
    ];
    for (const [payload, code, id] of cases) {
      const err = next(eve, 'chat_error');
      eve.emit('join_chat', payload);
      const e = await err;
      assert.equal(e.error, code, JSON.stringify(payload));
      assert.equal(e.chatid, id);
      assert.equal(e.data.event, 'join_chat');
      assert.equal(typeof e.data.message, 'string');
    }
    const ack = await ask(eve, 'join_chat', { chatid });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_A_MEMBER']);
    const err = next(eve, 'chat_error');
    eve.emit('leave_chat', { nope: 1 });
    assert.equal((await err).error, 'INVALID_ARGUMENT');
    assert.equal(eve.connected, true);
    const heard = next(sb, 'new_message');
    sa.emit('send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'members only' });
    assert.equal((await heard).message.content, 'members only');
    await unannounced;
    await unheard;
  });
});

describe('messaging', () => {
  test('send_message: ack, new_message to the room in the seed shape, message_sent to the sender', async () => {
    const { alice, chatid, sa, sb } = await pair();
    const clientMessageId = cid();
    const sent = next(sa, 'message_sent');
    const [toA, toB] = [next(sa, 'new_message'), next(sb, 'new_message')];
    const ack = await ask(sa, 'send_message', {
      chatid,
      clientMessageId,
      messageType: 'text',
      content: 'Hello, team!',
      timestamp: '2000-01-01T00:00:00.000Z',
    });
    assert.equal(ack.success, true);
    assert.equal(ack.clientMessageId, clientMessageId);
    assert.match(ack.serverMessageId, ID);
    assert.match(ack.timestamp, ISO);
    assert.notEqual(ack.timestamp, '2000-01-01T00:00:00.000Z');
    assert.deepEqual(await sent, {
      clientMessageId,
      serverMessageId: ack.serverMessageId,
      chatid,
      timestamp: ack.timestamp,
      status: 'sent',
      deliveredTo: [],
    });
    const [ma, mb] = await Promise.all([toA, toB]);
    assert.deepEqual(ma, mb);
    assert.deepEqual(mb, {
      message: {
        messageid: ack.serverMessageId,
        chatid,
        senderid: alice.id,
        clientMessageId,
        messageType: 'text',
        content: 'Hello, team!',
        attachments: [],
        mentions: [],
        timestamp: ack.timestamp,
        createdAt: ack.timestamp,
        messageStatus: 'sent',
        reactions: [],
      },
      chat: { chatid, chatName: 'Team chat', chatType: 'group' },
      sender: { profileid: alice.id, username: alice.username, displayname: 'Alice', avatar: '' },
    });
  });

  test('message_delivered reaches the sender once the recipient got it', async () => {
    const { bob, chatid, sa, sb } = await pair();
    const clientMessageId = cid();
    // Only once per recipient, never for the sender's own sockets: every
    // copy is counted from before the send.
    const deliveries = record(sa, 'message_delivered');
    const notToBob = expectSilence(sb, 'message_delivered');
    const got = next(sb, 'new_message');
    const ack = await ask(sa, 'send_message', { chatid, clientMessageId, messageType: 'text', content: 'ping' });
    await got;
    const [d] = await deliveries.count(1);
    assert.equal(d.messageid, ack.serverMessageId);
    assert.equal(d.clientMessageId, clientMessageId);
    assert.equal(d.deliveredTo, bob.id);
    assert.match(d.deliveredAt, ISO);
    assert.equal(d.isOfflineDelivery, false);
    await notToBob;
    assert.equal(deliveries.seen.length, 1, JSON.stringify(deliveries.seen));
    deliveries.stop();
  });

  test('a retry with the same clientMessageId makes no second message and no second broadcast', async () => {
    const { alice, chatid, sa, sb } = await pair();
    const payload = { chatid, clientMessageId: cid(), messageType: 'text', content: 'only once' };
    const seen = [next(sa, 'new_message'), next(sb, 'new_message')];
    const first = await ask(sa, 'send_message', payload);
    await Promise.all(seen);
    const sentAgain = next(sa, 'message_sent');
    const quiet = expectSilence([sa, sb], 'new_message');
    const second = await ask(sa, 'send_message', payload);
    assert.deepEqual(second, first);
    assert.equal((await sentAgain).serverMessageId, first.serverMessageId);
    await quiet;
    const stored = await history(alice.token, chatid);
    assert.deepEqual(stored.map((m) => m.text), ['only once']);
  });

  test('replyTo is the full message, mentions and attachments come through', async () => {
    const { alice, bob, chatid, sa, sb } = await pair();
    const firstSeen = [next(sa, 'new_message'), next(sb, 'new_message')];
    const first = await ask(sb, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'question?' });
    await Promise.all(firstSeen);
    const got = next(sb, 'new_message');
    const att = { type: 'image', url: 'https://cdn.example.com/a.png', name: 'a.png', size: 1234, mimetype: 'image/png' };
    const ack = await ask(sa, 'send_message', {
      chatid,
      clientMessageId: cid(),
      messageType: 'image',
      content: 'answer',
      attachments: [att],
      replyTo: first.serverMessageId,
      mentions: [bob.id],
    });
    assert.equal(ack.success, true);
    const m = await got;
    assert.equal(m.message.messageid, ack.serverMessageId);
    assert.equal(m.message.messageType, 'image');
    assert.deepEqual(m.message.attachments, [att]);
    assert.deepEqual(m.message.mentions, [bob.id]);
    assert.equal(m.message.replyTo.messageid, first.serverMessageId);
    assert.equal(m.message.replyTo.content, 'question?');
    assert.equal(m.message.replyTo.senderid, bob.id);
    assert.equal(m.message.replyTo.replyTo, undefined);
    assert.equal(m.sender.profileid, alice.id);
  });

  test('mark_message_read: message_read to the sender for each newly read message', async () => {
    const { bob, chatid, sa, sb } = await pair();
    const c1 = cid();
    const c2 = cid();
    const two = collect(sb, 'new_message', 2);
    const m1 = await ask(sa, 'send_message', { chatid, clientMessageId: c1, messageType: 'text', content: 'one' });
    const m2 = await ask(sa, 'send_message', { chatid, clientMessageId: c2, messageType: 'text', content: 'two' });
    await two;
    const reads = collect(sa, 'message_read', 2);
    const quiet = expectSilence(sb, 'message_read');
    sb.emit('mark_message_read', { messageid: m2.serverMessageId, chatid });
    const [r1, r2] = await reads;
    assert.deepEqual([r1.messageid, r2.messageid], [m1.serverMessageId, m2.serverMessageId]);
    assert.deepEqual([r1.clientMessageId, r2.clientMessageId], [c1, c2]);
    assert.equal(r1.readBy, bob.id);
    assert.match(r1.readAt, ISO);
    await quiet;
    // Reading the same again says nothing new.
    const again = expectSilence([sa, sb], 'message_read');
    const ack = await ask(sb, 'mark_message_read', { messageid: m2.serverMessageId, chatid });
    assert.equal(ack.success, true);
    assert.deepEqual(ack.read, []);
    await again;
  });

  test('react_to_message: message_reaction_added to the chat, the reactor included', async () => {
    const { bob, chatid, sa, sb } = await pair();
    const got = next(sb, 'new_message');
    const m = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'react to me' });
    await got;
    // Each socket gets it once: every copy is counted from before the reaction.
    const [ra, rb] = [record(sa, 'message_reaction_added'), record(sb, 'message_reaction_added')];
    sb.emit('react_to_message', { messageid: m.serverMessageId, chatid, emoji: '👍' });
    const [[a], [b]] = await Promise.all([ra.count(1), rb.count(1)]);
    assert.deepEqual(a, b);
    assert.equal(a.messageid, m.serverMessageId);
    assert.equal(a.chatid, chatid);
    assert.equal(a.reaction.emoji, '👍');
    assert.equal(a.reaction.profileid, bob.id);
    assert.equal(a.reaction.username, 'Bob');
    assert.match(a.reaction.timestamp, ISO);
    await sleep(QUIET_MS);
    assert.deepEqual([ra.seen.length, rb.seen.length], [1, 1]);
    ra.stop();
    rb.stop();
  });

  test('a message posted over REST reaches v3 sockets as new_message', async () => {
    const { alice, chatid, sb } = await pair();
    const got = next(sb, 'new_message');
    const { status, body } = await rest('POST', `/api/conversations/${chatid}/messages`, alice.token, { text: 'via REST' });
    assert.equal(status, 201);
    const m = await got;
    assert.equal(m.message.messageid, body.id);
    assert.equal(m.message.content, 'via REST');
    assert.equal(m.message.clientMessageId, undefined);
  });
});

describe('errors', () => {
  test('send_message refusals come back in the ack with a stable code; nothing is stored', async () => {
    const { alice, chatid, sa } = await pair();
    const big = 'x'.repeat(10 * 1024 + 1);
    const cases = [
      [{ clientMessageId: 'c', content: 'no chat' }, 'INVALID_ARGUMENT'],
      [{ chatid, content: 'no client id' }, 'INVALID_ARGUMENT'],
      [{ chatid, clientMessageId: 'c', content: 42 }, 'INVALID_ARGUMENT'],
      [{ chatid, clientMessageId: 'c', content: 'x', messageType: 'sticker' }, 'INVALID_ARGUMENT'],
      [{ chatid, clientMessageId: 'c', content: 'x', mentions: 'bob' }, 'INVALID_ARGUMENT'],
      [{ chatid, clientMessageId: 'c', attachments: [{ url: 'https://x/big', size: 51 * 1024 * 1024 }] }, 'INVALID_ARGUMENT'],
      [{ chatid, clientMessageId: 'c', messageType: 'text' }, 'EMPTY_MESSAGE'],
      [{ chatid, clientMessageId: 'c', content: '   ' }, 'EMPTY_MESSAGE'],
      [{ chatid, clientMessageId: 'c', content: big }, 'MESSAGE_TOO_LONG'],
      [{ chatid, clientMessageId: 'c', content: 'x', replyTo: '999999999' }, 'MESSAGE_NOT_FOUND'],
      [{ chatid: '999999999', clientMessageId: 'c', content: 'nowhere' }, 'CONVERSATION_NOT_FOUND'],
      ['just a string', 'INVALID_ARGUMENT'],
    ];
    const quiet = expectSilence(sa, 'chat_error');
    for (const [payload, code] of cases) {
      const ack = await ask(sa, 'send_message', payload);
      assert.equal(ack.success, false, JSON.stringify(payload).slice(0, 80));
      assert.equal(ack.code, code, JSON.stringify(payload).slice(0, 80));
      assert.equal(typeof ack.error, 'string');
      assert.equal(ack.clientMessageId, payload.clientMessageId);
    }
    await quiet;
    assert.equal(sa.connected, true);
    assert.deepEqual(await history(alice.token, chatid), []);
    // Exactly 10 KB is fine.
    const ok = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), content: 'y'.repeat(10 * 1024) });
    assert.equal(ok.success, true);
  });

  test("a non-member's send is refused with NOT_A_MEMBER and nobody hears it", async () => {
    const { alice, chatid, sa, sb } = await pair();
    const { s: eve } = await v3(user('eve'));
    const quiet = expectSilence([sa, sb, eve], 'new_message');
    const ack = await ask(eve, 'send_message', { chatid, clientMessageId: cid(), content: 'let me in' });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_A_MEMBER']);
    await quiet;
    assert.deepEqual(await history(alice.token, chatid), []);
  });

  test('without an ack: chat_error for refusals, error for unreadable payloads', async () => {
    const { chatid } = await pair();
    const { s: eve } = await v3(user('eve'));
    let err = next(eve, 'chat_error');
    eve.emit('send_message', { chatid, clientMessageId: cid(), content: 'no ack' });
    let e = await err;
    assert.equal(e.error, 'NOT_A_MEMBER');
    assert.equal(e.chatid, chatid);
    assert.equal(e.data.event, 'send_message');
    err = next(eve, 'error');
    eve.emit('send_message', { chatid });
    e = await err;
    assert.equal(e.error, 'INVALID_ARGUMENT');
    assert.equal(typeof e.message, 'string');
    assert.deepEqual(e.details, { event: 'send_message' });
    assert.equal(eve.connected, true);
  });

  test('mark_message_read and react_to_message errors', async () => {
    const { chatid, sa, sb } = await pair();
    const got = next(sb, 'new_message');
    const m = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), content: 'hi' });
    await got;
    const other = await conversation(user('zed').token, [user('yan').id], 'elsewhere');
    const { s: eve } = await v3(user('eve'));
    const cases = [
      [sb, 'mark_message_read', { chatid }, 'error', 'INVALID_ARGUMENT'],
      [sb, 'mark_message_read', { messageid: m.serverMessageId, chatid: {} }, 'error', 'INVALID_ARGUMENT'],
      [sb, 'mark_message_read', { messageid: '999999999', chatid }, 'chat_error', 'MESSAGE_NOT_FOUND'],
      [sb, 'mark_message_read', { messageid: m.serverMessageId, chatid: other }, 'chat_error', 'NOT_A_MEMBER'],
      [eve, 'mark_message_read', { messageid: m.serverMessageId, chatid }, 'chat_error', 'NOT_A_MEMBER'],
      [sb, 'react_to_message', { messageid: m.serverMessageId, chatid }, 'error', 'INVALID_ARGUMENT'],
      [sb, 'react_to_message', { messageid: m.serverMessageId, chatid, emoji: ' ' }, 'chat_error', 'INVALID_ARGUMENT'],
      [sb, 'react_to_message', { messageid: '999999999', chatid, emoji: '🎉' }, 'chat_error', 'MESSAGE_NOT_FOUND'],
      [sb, 'react_to_message', { messageid: m.serverMessageId, chatid: other, emoji: '🎉' }, 'chat_error', 'MESSAGE_NOT_FOUND'],
      [eve, 'react_to_message', { messageid: m.serverMessageId, chatid, emoji: '🎉' }, 'chat_error', 'NOT_A_MEMBER'],
    ];
    const quiet = expectSilence([sa, sb, eve], ['message_reaction_added', 'message_read']);
    for (const [s, event, payload, errorEvent, code] of cases) {
      const what = `${event} ${JSON.stringify(payload)}`;
      const err = next(s, errorEvent);
      s.emit(event, payload);
      const e = await err;
      assert.equal(e.error, code, what);
      if (errorEvent === 'chat_error') {
        assert.equal(e.data.event, event, what);
        assert.equal(e.chatid, payload.chatid, what);
      } else {
        assert.equal(e.details.event, event, what);
      }
    }
    const ack = await ask(eve, 'react_to_message', { messageid: m.serverMessageId, chatid, emoji: '🎉' });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_A_MEMBER']);
    await quiet;
    assert.equal(sb.connected && eve.connected, true);
  });
});

describe('offline delivery', () => {
  /** Posts `texts` as `from` over REST, one after another; returns their ids. */
  async function post(from, chatid, texts) {
    const ids = [];
    for (const text of texts) {
      // As a client honouring the message rate limit (10 a second): a 429
      // is sent again a moment later.
      let answer;
      for (let tries = 0; tries < 40; tries++) {
        answer = await rest('POST', `/api/conversations/${chatid}/messages`, from.token, { text });
        if (answer.status !== 429) break;
        await sleep(100);
      }
      assert.equal(answer.status, 201);
      ids.push(answer.body.id);
    }
    return ids;
  }

  /** Connects `u` on v3, recording new_message and the summary from before the handshake. */
  async function arrive(u) {
    let messages;
    let summaries;
    const { s } = await v3(u, {}, '/v3', (s) => {
      messages = record(s, 'new_message');
      summaries = record(s, 'offline_messages_delivered');
    });
    return { s, messages, summaries };
  }

  test('30 messages to an offline user: the 25 newest on connect, in order, then offline_messages_delivered; none twice', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Offline chat');
    const texts = Array.from({ length: 30 }, (_, i) => `queued ${i + 1}`);
    const ids = await post(alice, chatid, texts);
    // The sender, online, hears each offline delivery.
    const { s: sa } = await v3(alice);
    const receipts = record(sa, 'message_delivered');
    const { s, messages, summaries } = await arrive(bob);
    const [summary] = await summaries.count(1);
    // The summary comes after the messages it counts.
    assert.equal(messages.seen.length, 25);
    assert.deepEqual(
      messages.seen.map((m) => m.message.content),
      texts.slice(5),
    );
    assert.deepEqual(Object.keys(summary).sort(), ['deliveredAt', 'failed', 'successful', 'total']);
    assert.deepEqual({ ...summary, deliveredAt: 'x' }, { total: 25, successful: 25, failed: 0, deliveredAt: 'x' });
    assert.match(summary.deliveredAt, ISO);
    const first = messages.seen[0];
    assert.ok(first.queuedDuration >= 0 && Number.isInteger(first.queuedDuration), JSON.stringify(first));
    assert.deepEqual(first, {
      message: {
        messageid: ids[5],
        chatid,
        senderid: alice.id,
        messageType: 'text',
        content: 'queued 6',
        attachments: [],
        mentions: [],
        timestamp: first.message.timestamp,
        createdAt: first.message.timestamp,
        messageStatus: 'delivered',
        reactions: [],
      },
      chat: { chatid, chatName: 'Offline chat', chatType: 'group' },
      sender: { profileid: alice.id, username: alice.username, displayname: 'Alice', avatar: '' },
      isOfflineDelivery: true,
      deliveredAt: summary.deliveredAt,
      queuedDuration: first.queuedDuration,
    });
    assert.deepEqual(messages.seen.map((m) => m.message.messageid), ids.slice(5));
    await receipts.count(25);
    assert.deepEqual(
      receipts.seen.map((r) => [r.messageid, r.deliveredTo, r.isOfflineDelivery]),
      ids.slice(5).map((id) => [id, bob.id, true]),
    );
    await sleep(QUIET_MS);
    assert.equal(messages.seen.length, 25);
    assert.equal(summaries.seen.length, 1);
    s.disconnect();

    // A second connect: nothing again (listening from before the handshake).
    const again = await arrive(bob);
    await sleep(QUIET_MS);
    assert.deepEqual(again.messages.seen, []);
    assert.deepEqual(again.summaries.seen, []);
  });

  test('a message read on another contract meanwhile arrives already marked read', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Read elsewhere');
    const ids = await post(alice, chatid, ['one', 'two', 'three']);
    // Bob reads up to "two" from the mern app; that socket got none of them.
    const mern = await connect('/mern', { auth: { token: bob.token } });
    const ack = await mern.timeout(3000).emitWithAck('mark_read', { conversationId: chatid, messageIds: [ids[1]] });
    assert.equal(ack.success, true, JSON.stringify(ack));
    mern.disconnect();
    const { messages, summaries } = await arrive(bob);
    await summaries.count(1);
    assert.deepEqual(
      messages.seen.map((m) => [m.message.content, m.message.messageStatus]),
      [['one', 'read'], ['two', 'read'], ['three', 'delivered']],
    );
  });

  test('a user who was online when messages arrived gets nothing extra on reconnect', async () => {
    const { chatid, sa, sb, bob } = await pair();
    const delivered = record(sa, 'message_delivered');
    for (const content of ['live 1', 'live 2']) {
      const got = next(sb, 'new_message');
      await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content });
      await got;
    }
    // Both recorded delivered (the sender heard so) before bob leaves.
    await delivered.count(2);
    sb.disconnect();
    const back = await arrive(bob);
    await sleep(QUIET_MS);
    assert.deepEqual(back.messages.seen, []);
    assert.deepEqual(back.summaries.seen, []);
  });

  // hvtsocial is left out: its messages need no join, so its sockets catch
  // up on connect themselves (recovery.test.mjs).
  test('contracts that catch up on join get none of these events on connect and leave the queue to v3', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Elsewhere');
    await post(alice, chatid, ['while away']);
    const events = ['new_message', 'receive_message', 'message:new', 'offline_messages_delivered', 'offline_delivery_error'];
    for (const ns of ['/raven', '/mern', '/dreamstudio']) {
      const auth = ns === '/dreamstudio' ? { token: bob.token, userId: bob.id } : { token: bob.token };
      const other = open(ns, { auth });
      const quiet = expectSilence(other, events);
      await connected(other);
      await quiet;
      other.disconnect();
    }
    const { messages, summaries } = await arrive(bob);
    const [summary] = await summaries.count(1);
    assert.equal(summary.total, 1);
    assert.deepEqual(messages.seen.map((m) => m.message.content), ['while away']);
  });
});

describe('token expiry during a connection', () => {
  test('requests on an expired socket get auth_required; refresh_tokens on the same socket makes them work; another user\'s token disconnects', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Expiry');
    // `exp` 3 s ago: the handshake accepts it (5 s leeway), the socket's
    // requests are refused from 2 s later on.
    const short = { ...alice, token: token(alice.id, { name: 'Alice', expiresIn: -3, extra: { username: alice.username } }) };
    const { s: sa } = await v3(short);
    const { s: sb } = await v3(bob);
    await join(sb, chatid);
    await sleep(2500);
    const sid = sa.id;
    const quiet = expectSilence(sb, ['new_message', 'user_joined_chat']);
    const required = record(sa, 'auth_required');
    const refused = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'too late' });
    assert.deepEqual(refused, { success: false, error: 'the token has expired', code: 'TOKEN_EXPIRED' });
    const joinRefused = await ask(sa, 'join_chat', { chatid });
    assert.deepEqual(joinRefused, { success: false, error: 'the token has expired', code: 'TOKEN_EXPIRED' });
    await required.count(2);
    assert.deepEqual(required.seen, [null, null]);
    await quiet;
    assert.deepEqual(await history(bob.token, chatid), []);
    assert.equal(sa.connected, true);

    // A bad token does not refresh: auth_error, the socket stays refused.
    const bad = await ask(sa, 'refresh_tokens', { token: 'abc.def' });
    assert.deepEqual(bad, { success: false, error: 'the token is invalid', code: 'INVALID_TOKEN' });
    assert.equal((await ask(sa, 'join_chat', { chatid })).code, 'TOKEN_EXPIRED');

    // A fresh token for alice: tokens_refreshed, and the same socket works.
    const fresh = token(alice.id, { name: 'Alice', extra: { username: alice.username } });
    const refreshed = next(sa, 'tokens_refreshed');
    const ack = await ask(sa, 'refresh_tokens', { token: fresh });
    const payload = await refreshed;
    assert.equal(payload.refreshed, true);
    assert.match(payload.expiresAt, ISO);
    assert.ok(Date.parse(payload.expiresAt) > Date.now() + 3000 * 1000);
    assert.deepEqual(ack, { ...payload, success: true });
    assert.equal(sa.id, sid);
    await join(sa, chatid);
    const got = next(sb, 'new_message');
    const sent = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'in time' });
    assert.equal(sent.success, true);
    assert.equal((await got).message.content, 'in time');

    // Another user's token: auth_error USER_MISMATCH, then disconnected.
    const err = next(sa, 'auth_error');
    const gone = next(sa, 'disconnect');
    sa.emit('refresh_tokens', { token: bob.token });
    assert.deepEqual(await err, { error: 'USER_MISMATCH', message: 'the new token is for another user' });
    assert.equal(await gone, 'io server disconnect');
  });
});

describe('cross-contract: a v3 user and a raven user in one conversation', () => {
  test("each one's message reaches the other in their own contract's shape", async () => {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Mixed');
    const { s: sa } = await v3(alice);
    await join(sa, chatid);
    const raven = await connect('/raven', { auth: { token: bob.token } });
    const joined = await raven.emitWithAck('join_conversation', { conversation_id: chatid });
    assert.equal(joined.success, true);

    // v3 → raven, and the raven recipient's delivery comes back to v3.
    const toRaven = next(raven, 'new_message');
    const delivered = next(sa, 'message_delivered');
    const ack = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'hi from v3' });
    const r = await toRaven;
    assert.deepEqual(Object.keys(r).sort(), ['conversationId', 'createdAt', 'id', 'senderId', 'senderName', 'text']);
    assert.equal(r.id, ack.serverMessageId);
    assert.equal(r.conversationId, chatid);
    assert.equal(r.senderId, alice.id);
    assert.equal(r.senderName, 'Alice');
    assert.equal(r.text, 'hi from v3');
    assert.equal((await delivered).deliveredTo, bob.id);

    // raven → v3.
    const toV3 = next(sa, 'new_message');
    raven.emit('send_message', { conversation_id: chatid, text: 'hi from raven' });
    const m = await toV3;
    assert.equal(m.message.content, 'hi from raven');
    assert.equal(m.message.senderid, bob.id);
    assert.equal(m.message.messageType, 'text');
    assert.equal(m.message.clientMessageId, undefined);
    assert.deepEqual(m.chat, { chatid, chatName: 'Mixed', chatType: 'group' });
    assert.deepEqual(m.sender, { profileid: bob.id, username: bob.username, displayname: 'Bob', avatar: '' });

    // The v3 user's read receipt of a raven message needs no v3 sender.
    const ackRead = await ask(sa, 'mark_message_read', { messageid: m.message.messageid, chatid });
    assert.equal(ackRead.success, true);
    assert.deepEqual(ackRead.read, [m.message.messageid]);
  });
});

describe('presence and typing', () => {
  /** Alice and Bob share a chat (nobody connected yet). */
  async function peers() {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Presence');
    return { alice, bob, chatid };
  }

  test("online on the first socket: user_status_changed and user_online for a peer, nobody else", async () => {
    const { alice, bob } = await peers();
    const { s: sb } = await v3(bob);
    const { s: stranger } = await v3(user('carol'));
    const status = next(sb, 'user_status_changed');
    const online = next(sb, 'user_online');
    const aloof = expectSilence(stranger, ['user_status_changed', 'user_online']);
    const before = Date.now();
    await v3(alice);
    const st = await status;
    assert.deepEqual(Object.keys(st).sort(), ['isOnline', 'lastSeen', 'profileid']);
    assert.equal(st.profileid, alice.id);
    assert.equal(st.isOnline, true);
    assert.match(st.lastSeen, ISO);
    assert.ok(Date.parse(st.lastSeen) >= before - 1000, st.lastSeen);
    assert.deepEqual(await online, { profileid: alice.id });
    await aloof;
  });

  test('a second tab says nothing; closing one of two keeps the user online; the last one is offline with lastSeen', async () => {
    const { alice, bob } = await peers();
    const { s: sb } = await v3(bob);
    // Both events of the first socket, so neither is mistaken for a later one.
    const [online, legacy] = [next(sb, 'user_status_changed'), next(sb, 'user_online')];
    const { s: tab1 } = await v3(alice);
    assert.equal((await online).isOnline, true);
    assert.deepEqual(await legacy, { profileid: alice.id });

    const presence = ['user_status_changed', 'user_online', 'user_offline'];
    let quiet = expectSilence(sb, presence);
    const { s: tab2 } = await v3(alice);
    await quiet;

    quiet = expectSilence(sb, presence);
    tab1.disconnect();
    await quiet;

    const status = next(sb, 'user_status_changed');
    const offline = next(sb, 'user_offline');
    const before = Date.now();
    tab2.disconnect();
    const st = await status;
    assert.equal(st.profileid, alice.id);
    assert.equal(st.isOnline, false);
    assert.match(st.lastSeen, ISO);
    const seen = Date.parse(st.lastSeen);
    assert.ok(seen >= before - 1000 && seen <= Date.now() + 1000, st.lastSeen);
    assert.deepEqual(await offline, { profileid: alice.id });
  });

  test('the 11th socket of one user gets auth_error TOO_MANY_CONNECTIONS and is disconnected', async () => {
    const alice = user('alice');
    const tabs = [];
    for (let i = 0; i < 10; i++) tabs.push((await v3(alice)).s);
    const { payload, reason } = await authError({
      extraHeaders: { cookie: `accessToken=${alice.token}` },
      auth: { profileid: alice.id, timestamp: Date.now() },
    });
    assert.equal(payload.error, 'TOO_MANY_CONNECTIONS');
    assert.equal(typeof payload.message, 'string');
    assert.equal(reason, 'io server disconnect');
    assert.ok(tabs.every((t) => t.connected));
    // Closing one makes room for another (once the server has seen it go).
    tabs[0].disconnect();
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        const { s } = await v3(alice);
        assert.equal(s.connected, true);
        break;
      } catch (err) {
        if (!/TOO_MANY_CONNECTIONS/.test(err.message) || Date.now() > deadline) throw err;
      }
    }
  });

  test("typing_start / typing_stop reach the chat's other members, never the typist's tabs", async () => {
    const { alice, chatid, sa, sb } = await pair();
    const { s: sa2 } = await v3(alice);
    await join(sa2, chatid);
    const mute = expectSilence([sa, sa2], 'user_typing');
    const typing = next(sb, 'user_typing');
    const before = Date.now();
    const ack = await ask(sa, 'typing_start', { chatid });
    assert.deepEqual(ack, { success: true, chatid });
    const t = await typing;
    assert.deepEqual(Object.keys(t).sort(), ['chatid', 'isTyping', 'profileid', 'startedAt', 'username']);
    assert.equal(t.isTyping, true);
    assert.equal(t.chatid, chatid);
    assert.equal(t.profileid, alice.id);
    assert.equal(t.username, 'Alice');
    assert.match(t.startedAt, ISO);
    assert.ok(Date.parse(t.startedAt) >= before - 1000, t.startedAt);
    await mute;

    // The plain string form.
    const stopMute = expectSilence([sa, sa2], 'user_stopped_typing');
    const stopped = next(sb, 'user_stopped_typing');
    sa.emit('typing_stop', chatid);
    assert.deepEqual(await stopped, { chatid, profileid: alice.id, username: 'Alice', isTyping: false });
    await stopMute;

    const again = next(sb, 'user_typing');
    sa2.emit('typing_start', chatid);
    assert.equal((await again).profileid, alice.id);
  });

  test('typing without a stop ends by itself: user_stopped_typing', async () => {
    const { alice, chatid, sa, sb } = await pair();
    // Neither the start nor its expiry reaches the typist.
    const mine = expectSilence(sa, ['user_typing', 'user_stopped_typing']);
    const typing = next(sb, 'user_typing');
    sa.emit('typing_start', { chatid });
    await typing;
    const stopped = await next(sb, 'user_stopped_typing', 8000);
    assert.deepEqual(stopped, { chatid, profileid: alice.id, username: 'Alice', isTyping: false });
    await mine;
  });

  test("a non-member's typing is answered with chat_error and not relayed; bad payloads too", async () => {
    const { chatid, sa, sb } = await pair();
    const { s: eve } = await v3(user('eve'));
    const quiet = expectSilence([sa, sb, eve], ['user_typing', 'user_stopped_typing']);
    for (const [event, payload] of [['typing_start', { chatid }], ['typing_stop', chatid]]) {
      const err = next(eve, 'chat_error');
      eve.emit(event, payload);
      const e = await err;
      assert.equal(e.error, 'NOT_A_MEMBER', event);
      assert.equal(e.chatid, chatid);
      assert.equal(e.data.event, event);
      assert.equal(typeof e.data.message, 'string');
    }
    const ack = await ask(eve, 'typing_start', { chatid });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_A_MEMBER']);
    await quiet;
    for (const payload of [{}, { chatid: '' }, [1], null]) {
      const err = next(sa, 'chat_error');
      sa.emit('typing_start', payload);
      const e = await err;
      assert.equal(e.error, 'INVALID_ARGUMENT', JSON.stringify(payload));
      assert.equal(e.data.event, 'typing_start');
    }
    const err = next(sa, 'chat_error');
    sa.emit('typing_start', { chatid: '999999999' });
    assert.equal((await err).error, 'CONVERSATION_NOT_FOUND');
    assert.equal(eve.connected && sa.connected, true);
  });

  test('typing starts are throttled per user (30 a minute): the extra ones are dropped silently', async () => {
    const { chatid, sa, sb } = await pair();
    const noErrors = expectSilence(sa, 'chat_error');
    // Bob's logs count what got through: Alice starts and stops, again and
    // again, so every start that reaches him is a new user_typing. The ack
    // does not say whether a start was relayed; only Bob can.
    const starts = record(sb, 'user_typing');
    const stops = record(sb, 'user_stopped_typing');
    let relayed = 0;
    for (; relayed < 40; relayed++) {
      const ack = await ask(sa, 'typing_start', chatid);
      assert.deepEqual(ack, { success: true, chatid });
      try {
        await starts.count(relayed + 1, QUIET_MS);
      } catch {
        break;
      }
      assert.deepEqual(await ask(sa, 'typing_stop', chatid), { success: true, chatid }, 'stops always pass');
      await stops.count(relayed + 1);
    }
    // 30 a minute: the 31st start within the minute is dropped (a slow run
    // may have earned a start or three back by then).
    assert.ok(relayed >= 30 && relayed <= 33, `${relayed} starts relayed`);
    // The dropped start reached Bob neither then nor later.
    await sleep(QUIET_MS);
    assert.equal(starts.seen.length, relayed, JSON.stringify(starts.seen.slice(relayed)));
    assert.equal(stops.seen.length, relayed);
    await noErrors;
    starts.stop();
    stops.stop();
  });
});

describe('heartbeat', () => {
  /** Waits for `n` more of `event` on `s`, returning their payloads. */
  async function beats(s, event, n) {
    const log = record(s, event);
    try {
      return await log.count(n, HEARTBEAT_MS * (n + 3));
    } finally {
      log.stop();
    }
  }

  /** The sum of the round-trip histogram's counts in /metrics. */
  async function rttCount() {
    const text = await (await fetch(`${URL}/metrics`)).text();
    const lines = text.split('\n').filter((l) => l.startsWith('confab_heartbeat_rtt_seconds_count'));
    return { text, count: lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0) };
  }

  test('ping (ms since epoch) and heartbeat {timestamp} right away and then every interval', async () => {
    const alice = user('alice');
    const s = socket('/v3', { auth: { token: alice.token } });
    const [pings, heartbeats] = [record(s, 'ping'), record(s, 'heartbeat')];
    await connected(s);
    const got = await pings.count(3, HEARTBEAT_MS * 6);
    const hb = await heartbeats.count(3, HEARTBEAT_MS * 6);
    for (const p of got) {
      assert.equal(typeof p, 'number');
      assert.ok(Math.abs(p - Date.now()) < 5000, String(p));
    }
    assert.ok(got[1] > got[0] && got[2] > got[1], JSON.stringify(got));
    for (const b of hb) {
      assert.deepEqual(Object.keys(b), ['timestamp']);
      assert.match(b.timestamp, ISO);
    }
  });

  test('a client answering pong, heartbeat_response or both keeps its connection', async () => {
    const both = socket('/v3', { auth: { token: user('alice').token } });
    // The seed's app answers heartbeat only; another client only ping.
    const onlyHeartbeat = socket('/v3', { auth: { token: user('bob').token } });
    onlyHeartbeat.off('ping');
    const onlyPing = socket('/v3', { auth: { token: user('carol').token } });
    onlyPing.off('heartbeat');
    const sockets = [both, onlyHeartbeat, onlyPing];
    const dropped = expectSilence(sockets, 'disconnect');
    await Promise.all(sockets.map(connected));
    // Twice as many beats as the server lets go unanswered.
    await beats(both, 'ping', 6);
    await dropped;
    for (const s of sockets) assert.equal(s.connected, true);
  });

  test('a client that stops answering is dropped after three missed heartbeats and goes offline for its peers', async () => {
    const alice = user('alice');
    const bob = user('bob');
    await conversation(alice.token, [bob.id], 'Heartbeats');
    const { s: sb } = await v3(bob);
    const online = next(sb, 'user_status_changed');
    const { s: sa } = await v3(alice);
    assert.equal((await online).isOnline, true);
    // Answering, alice stays through more beats than the limit.
    const early = expectSilence(sa, 'disconnect');
    await beats(sa, 'heartbeat', 4);
    await early;

    const offline = next(sb, 'user_status_changed', HEARTBEAT_MS * 10);
    const legacy = next(sb, 'user_offline', HEARTBEAT_MS * 10);
    const gone = next(sa, 'disconnect', HEARTBEAT_MS * 10);
    const unanswered = record(sa, 'heartbeat');
    stopAnsweringHeartbeats(sa);
    assert.equal(await gone, 'io server disconnect');
    // Three beats went unanswered before the server gave up (the one in
    // flight when answers stopped may have been answered).
    assert.ok(unanswered.seen.length >= 3, `${unanswered.seen.length} heartbeats before the drop`);
    const st = await offline;
    assert.equal(st.profileid, alice.id);
    assert.equal(st.isOnline, false);
    assert.deepEqual(await legacy, { profileid: alice.id });
  });

  test('the round trip is counted in the /metrics histogram', async () => {
    const before = await rttCount();
    const s = socket('/v3', { auth: { token: user('alice').token } });
    await connected(s);
    await beats(s, 'heartbeat', 3);
    const after = await rttCount();
    assert.match(after.text, /# TYPE confab_heartbeat_rtt_seconds histogram/);
    assert.match(after.text, /confab_heartbeat_rtt_seconds_bucket\{le="0.03"\} \d+/);
    assert.ok(after.count >= before.count + 3, `${before.count} -> ${after.count}`);
  });
});

// Swaggo's published frontend, Website/Frontend/Components/Helper/
// PerfectSocketProvider.jsx (the file the seed names), replayed as it
// really connects and listens.
describe('real client: PerfectSocketProvider', () => {
  /** The provider's socketOptions (Node sends the httpOnly cookie as a header). */
  function provider(u, profileid = u.id, queryUserId = profileid) {
    const headers = { 'X-Requested-With': 'XMLHttpRequest', cookie: `accessToken=${u.token}` };
    const s = io(URL, {
      withCredentials: true,
      transports: ['websocket', 'polling'],
      upgrade: true,
      rememberUpgrade: true,
      auth: { profileid, timestamp: Date.now() },
      autoConnect: true,
      timeout: 15000,
      reconnection: false,
      forceNew: true,
      path: '/socket.io',
      extraHeaders: headers,
      transportOptions: { polling: { extraHeaders: headers }, websocket: { extraHeaders: headers } },
      query: { userId: queryUserId, timestamp: Date.now() },
    });
    mine.add(s);
    // The provider answers every heartbeat (and never listens for ping).
    s.on('heartbeat', (beat) => {
      const now = Date.now();
      s.emit('heartbeat_response', { timestamp: beat.timestamp, clientTime: new Date(), roundTripTime: now - new Date(beat.timestamp).getTime() });
    });
    // Everything the provider listens for, recorded from before the handshake.
    const heard = { heartbeat: record(s, 'heartbeat'), authenticated: record(s, 'authenticated') };
    return { s, heard };
  }

  test('its connect options: authenticated as the token user, a heartbeat right away, heartbeat_response accepted', async () => {
    const alice = user('alice');
    const { s, heard } = provider(alice);
    const errors = expectSilence(s, ['error', 'auth_error', 'disconnect']);
    const [hello] = await heard.authenticated.count(1);
    assert.equal(hello.user.id, alice.id);
    assert.equal(hello.user.username, alice.username);
    assert.equal(typeof hello.security.riskScore, 'number');
    const [beat] = await heard.heartbeat.count(1);
    assert.deepEqual(Object.keys(beat), ['timestamp']);
    assert.match(beat.timestamp, ISO);
    assert.ok(Math.abs(Date.parse(beat.timestamp) - Date.now()) < 5000, beat.timestamp);
    // The provider's answer, exactly as it builds it.
    const now = Date.now();
    s.emit('heartbeat_response', { timestamp: beat.timestamp, clientTime: new Date(), roundTripTime: now - new Date(beat.timestamp).getTime() });
    await errors;
    assert.equal(s.connected, true);
  });

  test('query.userId and X-Requested-With are never trusted over the token', async () => {
    const [alice, bob] = [user('alice'), user('bob')];
    const chatid = await conversation(bob.token, [uid('carol')]);
    const { s, heard } = provider(alice, alice.id, bob.id);
    const [hello] = await heard.authenticated.count(1);
    assert.equal(hello.profile.profileid, alice.id);
    // Not bob: bob's chat is closed to this socket.
    const err = next(s, 'chat_error');
    s.emit('join_chat', { chatid });
    assert.equal((await err).error, 'NOT_A_MEMBER');
  });

  test('get_online_users on connect: the online users who share a chat, acked as the provider reads it', async () => {
    const [alice, bob, carol, dave] = [user('alice'), user('bob'), user('carol'), user('dave')];
    await conversation(alice.token, [bob.id, carol.id], 'team');
    await v3(bob);
    await v3(dave); // online, but shares no chat with alice
    const { s, heard } = provider(alice);
    await heard.authenticated.count(1);
    const response = await ask(s, 'get_online_users', {});
    assert.equal(response.success, true);
    const ids = response.users.map((u) => u.profileid || u.id).filter(Boolean);
    assert.deepEqual(ids, [bob.id]);
    assert.equal(response.users[0].isOnline, true);
    assert.match(response.users[0].lastSeen, ISO);
  });

  test('new_message as the provider reads it: data.message?.chatid, data.sender?.profileid || data.senderid', async () => {
    const { alice, chatid, sa, sb } = await pair();
    const got = next(sb, 'new_message');
    await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'keyword here' });
    const data = await got;
    assert.equal(data.message?.chatid, chatid);
    assert.equal(data.sender?.profileid || data.senderid, alice.id);
    assert.equal((data.message || data)?.content, 'keyword here');
    assert.equal(data.sender?.username, alice.username);
  });

  test('reaction_added beside message_reaction_added, the same payload', async () => {
    const { chatid, sa, sb } = await pair();
    const got = next(sb, 'new_message');
    const m = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'react' });
    await got;
    const [seed, app] = [next(sa, 'message_reaction_added'), next(sa, 'reaction_added')];
    sb.emit('react_to_message', { messageid: m.serverMessageId, chatid, emoji: '🎉' });
    const [a, b] = await Promise.all([seed, app]);
    assert.deepEqual(a, b);
    assert.equal(b.messageid, m.serverMessageId);
    assert.equal(b.reaction.emoji, '🎉');
  });

  test('error carries code (the provider logs error.code) beside the seed\'s error', async () => {
    const { s } = await v3(user('eve'));
    const err = next(s, 'error');
    s.emit('react_to_message', { emoji: '👍' });
    const e = await err;
    assert.equal(e.error, 'INVALID_ARGUMENT');
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.equal(typeof e.message, 'string');
  });
});

describe('calls', () => {
  const RING_MS = Number(process.env.CONFAB_CALL_RING_TIMEOUT_MS ?? 60000);
  const MAX_MS = Number(process.env.CONFAB_CALL_MAX_DURATION_MS ?? 10800000);
  const GRACE_MS = Number(process.env.CONFAB_CALL_DISCONNECT_GRACE_MS ?? 15000);
  const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\n' };
  const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\n' };
  const ICE = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };

  /** Alice and Bob share a chat; both connected on /v3. */
  async function pair() {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Call');
    const { s: sa } = await v3(alice);
    const { s: sb } = await v3(bob);
    return { alice, bob, chatid, sa, sb };
  }

  /** Alice rings Bob; resolves with the ack and Bob's incoming_call. */
  async function ring(sa, sb, bob, extra = {}) {
    const incoming = next(sb, 'incoming_call');
    const ack = await ask(sa, 'initiate_call', { targetId: bob.id, callType: 'video', ...extra });
    assert.equal(ack.success, true, JSON.stringify(ack));
    return { ack, incoming: await incoming };
  }

  test('ring, answer, signaling both ways, controls and end with a duration', async () => {
    const { alice, bob, chatid, sa, sb } = await pair();
    const { ack, incoming } = await ring(sa, sb, bob, { chatid });
    assert.match(ack.callId, ID);
    assert.deepEqual(ack, { success: true, callId: ack.callId, callerId: alice.id, receiverId: bob.id, callType: 'video', timestamp: ack.timestamp });
    assert.match(ack.timestamp, ISO);
    assert.deepEqual(incoming, {
      callId: ack.callId, callerId: alice.id, callerName: 'Alice', callerAvatar: '', callType: 'video', chatid, timestamp: ack.timestamp,
    });

    const answeredA = next(sa, 'call_answered');
    const answeredB = next(sb, 'call_answered');
    assert.equal((await ask(sb, 'answer_call', { callId: ack.callId, acceptsVideo: false })).success, true);
    for (const a of [await answeredA, await answeredB]) {
      assert.equal(a.callId, ack.callId);
      assert.equal(a.answeredBy, bob.id);
      assert.equal(a.acceptedVideo, false);
      assert.match(a.timestamp, ISO);
    }

    // SDP and ICE pass through untouched, each way.
    const offer = next(sb, 'webrtc_offer_received');
    sa.emit('webrtc_offer', { callId: ack.callId, targetId: bob.id, offer: OFFER });
    assert.deepEqual(await offer, { callId: ack.callId, fromId: alice.id, offer: OFFER });
    const answer = next(sa, 'webrtc_answer_received');
    sb.emit('webrtc_answer', { callId: ack.callId, targetId: alice.id, answer: ANSWER });
    assert.deepEqual(await answer, { callId: ack.callId, fromId: bob.id, answer: ANSWER });
    const iceB = next(sb, 'webrtc_ice_candidate_received');
    sa.emit('webrtc_ice_candidate', { callId: ack.callId, targetId: bob.id, candidate: ICE });
    assert.deepEqual(await iceB, { callId: ack.callId, fromId: alice.id, candidate: ICE });
    const iceA = next(sa, 'webrtc_ice_candidate_received');
    sb.emit('ice_candidate', { callId: ack.callId, targetId: alice.id, candidate: ICE }); // legacy alias
    assert.deepEqual(await iceA, { callId: ack.callId, fromId: bob.id, candidate: ICE });

    const muted = next(sa, 'participant_muted');
    sb.emit('toggle_mute', { callId: ack.callId, muted: true });
    const m = await muted;
    assert.deepEqual({ ...m, timestamp: undefined }, { callId: ack.callId, profileid: bob.id, muted: true, timestamp: undefined });
    assert.match(m.timestamp, ISO);
    const video = next(sb, 'participant_video_toggled');
    sa.emit('toggle_video', { callId: ack.callId, videoEnabled: false });
    assert.equal((await video).videoEnabled, false);
    const share = next(sb, 'participant_screen_share_toggled');
    sa.emit('toggle_screen_share', { callId: ack.callId, screenSharing: true });
    assert.deepEqual((({ callId, profileid, screenSharing }) => ({ callId, profileid, screenSharing }))(await share), {
      callId: ack.callId, profileid: alice.id, screenSharing: true,
    });

    await sleep(1100);
    const endedA = next(sa, 'call_ended');
    const endedB = next(sb, 'call_ended');
    assert.equal((await ask(sa, 'end_call', { callId: ack.callId })).success, true);
    for (const e of [await endedA, await endedB]) {
      assert.deepEqual({ ...e, timestamp: undefined, duration: undefined }, {
        callId: ack.callId, endedBy: alice.id, reason: 'user_ended', timestamp: undefined, duration: undefined,
      });
      assert.ok(e.duration >= 1, `duration ${e.duration}`);
      assert.match(e.timestamp, ISO);
    }

    // The record, over REST, for either party.
    const records = await rest('GET', `/api/calls?conversation=${chatid}&limit=5`, bob.token);
    assert.equal(records.status, 200);
    assert.equal(records.body.calls.length, 1);
    const r = records.body.calls[0];
    assert.equal(r.id, ack.callId);
    assert.equal(r.state, 'ended');
    assert.equal(r.endReason, 'user_ended');
    assert.equal(r.media, 'video');
    assert.ok(r.durationMs >= 1000);
    assert.deepEqual(r.participants.map((p) => p.userId).sort(), [alice.id, bob.id].sort());
    for (const p of r.participants) assert.ok(p.joinedAt && p.leftAt, JSON.stringify(p));
    const eve = user('eve');
    assert.deepEqual((await rest('GET', `/api/calls?conversation=${chatid}`, eve.token)).body.calls, []);
    assert.equal((await rest('GET', '/api/calls')).status, 401);
  });

  test('a second tab rings too and stops when the first answers; signaling goes to the answering tab only', async () => {
    const { alice, bob, sa, sb } = await pair();
    const { s: sb2 } = await v3(bob);
    const ring2 = next(sb2, 'incoming_call');
    const { ack } = await ring(sa, sb, bob);
    assert.equal((await ring2).callId, ack.callId);

    const stopped = next(sb2, 'call_answered');
    assert.equal((await ask(sb, 'answer_call', { callId: ack.callId, acceptsVideo: true })).success, true);
    assert.equal((await stopped).answeredBy, bob.id, 'the other tab learns the call was answered');

    const quiet = expectSilence(sb2, ['webrtc_offer_received', 'webrtc_ice_candidate_received']);
    const offer = next(sb, 'webrtc_offer_received');
    const ice = next(sb, 'webrtc_ice_candidate_received');
    sa.emit('webrtc_offer', { callId: ack.callId, targetId: bob.id, offer: OFFER });
    sa.emit('webrtc_ice_candidate', { callId: ack.callId, targetId: bob.id, candidate: ICE });
    await offer;
    await ice;
    await quiet;
    // The other tab may not answer any more.
    const late = await ask(sb2, 'answer_call', { callId: ack.callId });
    assert.deepEqual(late, { success: false, error: late.error, code: 'CONFLICT' });
    await ask(sb, 'end_call', { callId: ack.callId });
  });

  test("a non-participant's signal is refused and forwarded to nobody", async () => {
    const { bob, sa, sb } = await pair();
    const { ack } = await ring(sa, sb, bob);
    await ask(sb, 'answer_call', { callId: ack.callId });
    const eve = user('eve');
    const { s: se } = await v3(eve);
    const quiet = expectSilence([sa, sb], ['webrtc_offer_received', 'webrtc_ice_candidate_received', 'participant_muted']);
    const refused = await ask(se, 'webrtc_offer', { callId: ack.callId, targetId: bob.id, offer: OFFER });
    assert.equal(refused.code, 'PERMISSION_DENIED');
    const err = next(se, 'error');
    se.emit('webrtc_ice_candidate', { callId: ack.callId, targetId: bob.id, candidate: ICE });
    assert.equal((await err).error, 'PERMISSION_DENIED');
    assert.equal((await ask(se, 'toggle_mute', { callId: ack.callId, muted: true })).code, 'PERMISSION_DENIED');
    await quiet;
    await ask(sa, 'end_call', { callId: ack.callId });
  });

  test('reject (call_rejected and the legacy names) reaches the caller as call_rejected', async () => {
    const { bob, sa, sb } = await pair();
    for (const event of ['call_rejected', 'decline_call', 'call_reject']) {
      const { ack } = await ring(sa, sb, bob, { callType: 'voice' });
      const rejected = next(sa, 'call_rejected');
      assert.equal((await ask(sb, event, { callId: ack.callId })).success, true);
      const r = await rejected;
      assert.deepEqual({ ...r, timestamp: undefined }, { callId: ack.callId, rejectedBy: bob.id, timestamp: undefined });
      assert.match(r.timestamp, ISO);
    }
  });

  test('cancel before an answer: the callee gets call_ended (cancelled); the legacy cancel_call too', async () => {
    const { alice, bob, sa, sb } = await pair();
    for (const event of ['call_cancelled', 'cancel_call']) {
      const { ack } = await ring(sa, sb, bob);
      const ended = next(sb, 'call_ended');
      assert.equal((await ask(sa, event, { callId: ack.callId })).success, true);
      const e = await ended;
      assert.deepEqual({ ...e, timestamp: undefined }, { callId: ack.callId, endedBy: alice.id, reason: 'cancelled', duration: 0, timestamp: undefined });
    }
  });

  test('legacy call_offer / call_answer / call_end work like the new names', async () => {
    const { alice, bob, sa, sb } = await pair();
    const incoming = next(sb, 'incoming_call');
    const ack = await ask(sa, 'call_offer', { targetId: bob.id, callType: 'voice' });
    assert.equal(ack.success, true);
    assert.equal((await incoming).callType, 'voice');
    const answered = next(sa, 'call_answered');
    sb.emit('call_answer', { callId: ack.callId });
    assert.equal((await answered).answeredBy, bob.id);
    const ended = next(sa, 'call_ended');
    sb.emit('call_end', { callId: ack.callId, reason: 'network_issue' });
    const e = await ended;
    assert.equal(e.reason, 'network_issue');
    assert.equal(e.endedBy, bob.id);
    assert.notEqual(e.endedBy, alice.id);
  });

  test('unanswered: call_missed to both after the ring timeout', async () => {
    const { alice, bob, sa, sb } = await pair();
    const missedA = next(sa, 'call_missed', RING_MS + 3000);
    const missedB = next(sb, 'call_missed', RING_MS + 3000);
    const started = Date.now();
    const { ack } = await ring(sa, sb, bob);
    for (const m of [await missedA, await missedB]) {
      assert.deepEqual({ ...m, timestamp: undefined }, { callId: ack.callId, callerId: alice.id, timestamp: undefined });
    }
    assert.ok(Date.now() - started >= RING_MS - 100, 'not before the ring timeout');
    assert.equal((await ask(sb, 'answer_call', { callId: ack.callId })).code, 'CONFLICT');
  });

  test('an answered call ends at its maximum duration: endedBy system, reason timeout', async () => {
    const { bob, sa, sb } = await pair();
    const { ack } = await ring(sa, sb, bob);
    const ended = next(sa, 'call_ended', MAX_MS + 3000);
    await ask(sb, 'answer_call', { callId: ack.callId });
    const e = await ended;
    assert.equal(e.endedBy, 'system');
    assert.equal(e.reason, 'timeout');
    assert.ok(Math.abs(e.duration - MAX_MS / 1000) <= 1, `duration ${e.duration}`);
  });

  test('a participant who drops and stays away past the grace ends the call: participant_disconnected', async () => {
    const { bob, sa, sb } = await pair();
    const { ack } = await ring(sa, sb, bob);
    await ask(sb, 'answer_call', { callId: ack.callId });
    const ended = next(sa, 'call_ended', GRACE_MS + 3000);
    const dropped = Date.now();
    sb.disconnect();
    const e = await ended;
    assert.deepEqual({ endedBy: e.endedBy, reason: e.reason }, { endedBy: 'system', reason: 'participant_disconnected' });
    assert.ok(Date.now() - dropped >= GRACE_MS - 100);
  });

  test('a participant who comes back within the grace stays in the call, on the new socket', async () => {
    const { alice, bob, sa, sb } = await pair();
    const { ack } = await ring(sa, sb, bob);
    await ask(sb, 'answer_call', { callId: ack.callId });
    const quiet = expectSilence(sa, 'call_ended', { ms: GRACE_MS + 500 });
    sb.disconnect();
    await sleep(GRACE_MS / 3);
    const { s: back } = await v3(bob);
    await quiet;
    const offer = next(back, 'webrtc_offer_received');
    sa.emit('webrtc_offer', { callId: ack.callId, targetId: bob.id, offer: OFFER });
    assert.equal((await offer).fromId, alice.id);
    await ask(back, 'end_call', { callId: ack.callId });
  });

  test('busy: calling someone in an ongoing call is refused with USER_BUSY', async () => {
    const { bob, sa, sb } = await pair();
    const { ack } = await ring(sa, sb, bob);
    await ask(sb, 'answer_call', { callId: ack.callId });
    const carol = user('carol');
    await conversation(carol.token, [bob.id], 'Carol and Bob');
    const { s: sc } = await v3(carol);
    const quiet = expectSilence(sb, 'incoming_call');
    const busy = await ask(sc, 'initiate_call', { targetId: bob.id, callType: 'voice' });
    assert.deepEqual(busy, { success: false, error: busy.error, code: 'USER_BUSY' });
    await quiet;
    await ask(sa, 'end_call', { callId: ack.callId });
  });

  test('a callId from the client makes a retry the same call; strangers cannot be called', async () => {
    const { bob, sa, sb } = await pair();
    const calls = record(sb, 'incoming_call');
    const callId = `client-${Date.now()}`;
    const first = await ask(sa, 'initiate_call', { targetId: bob.id, callType: 'video', callId });
    const again = await ask(sa, 'initiate_call', { targetId: bob.id, callType: 'video', callId });
    assert.equal(first.callId, again.callId);
    await calls.count(1);
    await sleep(QUIET_MS);
    assert.equal(calls.seen.length, 1, 'rung once');
    await ask(sa, 'call_cancelled', { callId: first.callId });
    const stranger = user('stranger');
    const refused = await ask(sa, 'initiate_call', { targetId: stranger.id, callType: 'video' });
    assert.equal(refused.code, 'PERMISSION_DENIED');
    const bad = await ask(sa, 'initiate_call', { targetId: bob.id, callType: 'hologram' });
    assert.equal(bad.code, 'INVALID_ARGUMENT');
  });

  test('the sixth call start in a minute: rate_limited {error, message, retryAfter}', async () => {
    const { bob, sa, sb } = await pair();
    for (let i = 0; i < 5; i++) {
      const { ack } = await ring(sa, sb, bob);
      await ask(sa, 'call_cancelled', { callId: ack.callId });
    }
    const limited = next(sa, 'rate_limited');
    const refused = await ask(sa, 'initiate_call', { targetId: bob.id, callType: 'video' });
    assert.equal(refused.code, 'RATE_LIMITED');
    assert.ok(refused.retryAfter > 0 && refused.retryAfter <= 60);
    const r = await limited;
    assert.deepEqual(r, { error: 'rate_limited', message: r.message, retryAfter: refused.retryAfter });
    assert.equal(typeof r.message, 'string');
  });
});

// Swaggo's chat interface beside the provider,
// Website/Frontend/Components/Chat/ComprehensiveChatInterface.js, as it
// reads messages and typing and starts, answers and declines calls; and the
// access-token cookie its backend sets over HTTPS. The seed's fields stay
// (the suites above prove them); these are served beside them.
describe('real client: the chat interface', () => {
  test("new_message carries createdAt, the same instant as the seed's timestamp, live, in replyTo and offline", async () => {
    const { alice, chatid, sa, sb } = await pair();
    const got = next(sb, 'new_message');
    const ack = await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 'when?' });
    const data = await got;
    // The chat view: `timestamp: new Date(data.message.createdAt)`.
    const shown = new Date(data.message.createdAt);
    assert.ok(!Number.isNaN(shown.getTime()), `Invalid Date from ${data.message.createdAt}`);
    assert.equal(data.message.createdAt, data.message.timestamp);
    assert.equal(data.message.createdAt, ack.timestamp);

    const reply = next(sb, 'new_message');
    await ask(sa, 'send_message', { chatid, clientMessageId: cid(), messageType: 'text', content: 're', replyTo: ack.serverMessageId });
    const replied = (await reply).message.replyTo;
    assert.equal(replied.messageid, ack.serverMessageId);
    assert.equal(replied.createdAt, ack.timestamp);

    // Offline: what reached none of carol's sockets comes on her connect.
    const carol = user('carol');
    const dm = await conversation(alice.token, [carol.id], 'Later');
    const posted = await rest('POST', `/api/conversations/${dm}/messages`, alice.token, { text: 'while away' });
    assert.equal(posted.status, 201);
    let queued;
    await v3(carol, {}, '/v3', (s) => {
      queued = record(s, 'new_message');
    });
    const [offline] = await queued.count(1);
    assert.equal(offline.isOfflineDelivery, true);
    assert.match(offline.message.createdAt, ISO);
    assert.equal(offline.message.createdAt, offline.message.timestamp);
    assert.equal(Date.parse(offline.message.createdAt), Date.parse(posted.body.createdAt));
  });

  test('user_typing carries isTyping: true and user_stopped_typing isTyping: false', async () => {
    const { alice, chatid, sa, sb } = await pair();
    // The chat view: `setOtherUserTyping(data.isTyping)` on user_typing.
    const typing = next(sb, 'user_typing');
    sa.emit('typing_start', chatid);
    const t = await typing;
    assert.equal(t.profileid, alice.id);
    assert.equal(t.isTyping, true);
    const stopped = next(sb, 'user_stopped_typing');
    sa.emit('typing_stop', chatid);
    assert.equal((await stopped).isTyping, false);
  });

  /** Alice and Bob share a chat and are connected; the ring's payload as the interface sends it. */
  async function callers() {
    const alice = user('alice');
    const bob = user('bob');
    const chatid = await conversation(alice.token, [bob.id], 'Call');
    const { s: sa } = await v3(alice);
    const { s: sb } = await v3(bob);
    const start = (extra = {}) => ({
      callId: `call_${Date.now()}_${Math.random()}`,
      chatid,
      callType: 'video',
      receiverId: bob.id,
      caller: { profileid: alice.id, username: alice.username, profilePic: '' },
      ...extra,
    });
    return { alice, bob, chatid, sa, sb, start };
  }

  test('initiate_call with receiverId (the interface names the callee so) rings that user; targetId wins when both are sent', async () => {
    const { alice, bob, chatid, sa, sb, start } = await callers();
    const incoming = next(sb, 'incoming_call');
    const ack = await ask(sa, 'initiate_call', start());
    assert.equal(ack.success, true, JSON.stringify(ack));
    assert.equal(ack.receiverId, bob.id);
    const ring = await incoming;
    assert.equal(ring.callId, ack.callId);
    assert.equal(ring.callerId, alice.id);
    assert.equal(ring.chatid, chatid);
    await ask(sa, 'call_cancelled', { callId: ack.callId });

    // Both: the seed's targetId decides.
    const carol = user('carol');
    const withCarol = await conversation(alice.token, [carol.id], 'Carol');
    const { s: sc } = await v3(carol);
    const quiet = expectSilence(sb, 'incoming_call');
    const rings = next(sc, 'incoming_call');
    const both = await ask(sa, 'initiate_call', start({ targetId: carol.id, chatid: withCarol }));
    assert.equal(both.success, true, JSON.stringify(both));
    assert.equal(both.receiverId, carol.id);
    assert.equal((await rings).callId, both.callId);
    await quiet;
    await ask(sa, 'call_cancelled', { callId: both.callId });

    // Neither: refused, nobody rung.
    const none = expectSilence([sb, sc], 'incoming_call');
    const refused = await ask(sa, 'initiate_call', start({ receiverId: undefined }));
    assert.equal(refused.success, false);
    assert.equal(refused.code, 'INVALID_ARGUMENT');
    await none;
  });

  test('answer_call {callId, chatid, accepted: false} (the Decline button) declines as call_rejected does: nobody is left in a call', async () => {
    const { alice, bob, chatid, sa, sb, start } = await callers();
    const { s: sb2 } = await v3(bob);
    const incoming = next(sb, 'incoming_call');
    const ack = await ask(sa, 'initiate_call', start());
    const ring = await incoming;

    // As the interface sends it: no ack.
    const answered = expectSilence([sa, sb, sb2], 'call_answered');
    const rejected = [next(sa, 'call_rejected'), next(sb2, 'call_rejected')];
    sb.emit('answer_call', {
      callId: ring.callId,
      chatid: ring.chatid,
      accepted: false,
      answerer: { profileid: bob.id, username: bob.username, profilePic: '' },
    });
    for (const r of await Promise.all(rejected)) {
      assert.deepEqual({ ...r, timestamp: undefined }, { callId: ack.callId, rejectedBy: bob.id, timestamp: undefined });
      assert.match(r.timestamp, ISO);
    }
    await answered;
    const records = await rest('GET', `/api/calls?conversation=${chatid}`, alice.token);
    assert.deepEqual(records.body.calls.map((c) => [c.id, c.state]), [[ack.callId, 'rejected']]);

    // Nobody is busy: the next call rings; declined with an ack, it is acked as call_rejected is.
    const again = next(sb, 'incoming_call');
    const second = await ask(sa, 'initiate_call', start());
    assert.equal(second.success, true, JSON.stringify(second));
    await again;
    const rejectedAgain = next(sa, 'call_rejected');
    assert.deepEqual(await ask(sb, 'answer_call', { callId: second.callId, chatid, accepted: false }), { success: true, callId: second.callId });
    assert.equal((await rejectedAgain).rejectedBy, bob.id);
    // A declined call cannot be declined or answered again.
    assert.equal((await ask(sb, 'answer_call', { callId: second.callId, accepted: false })).code, 'CONFLICT');

    // accepted: true answers.
    const third = await ask(sa, 'initiate_call', start());
    const answeredNow = next(sa, 'call_answered');
    assert.deepEqual(await ask(sb, 'answer_call', { callId: third.callId, chatid, accepted: true }), { success: true, callId: third.callId });
    assert.equal((await answeredNow).answeredBy, bob.id);
    await ask(sa, 'end_call', { callId: third.callId });
  });

  test('the access token from the __Host-accessToken cookie (the backend over HTTPS) first, then accessToken', async () => {
    const alice = user('alice');
    const bob = user('bob');
    const cookie = (c) => ({ extraHeaders: { cookie: c } });
    let { hello } = await v3(alice, cookie(`theme=dark; __Host-accessToken=${alice.token}`));
    assert.equal(hello.user.id, alice.id);
    // Both: the __Host- one wins, whichever comes first.
    ({ hello } = await v3(alice, cookie(`accessToken=${bob.token}; __Host-accessToken=${alice.token}`)));
    assert.equal(hello.user.id, alice.id);
    // REST reads it too.
    const res = await fetch(`${URL}/api/conversations`, { headers: { cookie: `accessToken=abc.def; __Host-accessToken=${alice.token}` } });
    assert.equal(res.status, 200);
    const plain = await fetch(`${URL}/api/conversations`, { headers: { cookie: `accessToken=${alice.token}` } });
    assert.equal(plain.status, 200);
  });
});
