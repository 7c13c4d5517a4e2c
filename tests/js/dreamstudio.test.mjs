// The `dreamstudio` contract (seed 004) with the official socket.io-client:
// the `auth: {token, userId}` handshake, rooms (join_room leaves the previous
// room, member:joined / member:left), message:send / edit / delete and their
// broadcasts, every error string, numeric ids on the wire, the default
// namespace, a raven user in the same conversation, presence (user:online /
// user:offline for the users who share a room, user:typing /
// user:stop_typing to the room except the typist, the per-user socket
// limit), chat-service restarting under a running edge, and room calls
// (ring, answer, signaling, end, the three timers, busy, the rate limit,
// one participant declining or leaving a call that goes on), and token
// expiry during a connection (refused, then refresh_token on the same socket).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  QUIET_MS,
  closeAll,
  connect,
  control,
  conversation,
  expectSilence,
  next,
  ready,
  record,
  refused,
  rest,
  sleep,
  token,
} from './confab.mjs';

after(closeAll);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A numeric user id (as a string subject) unique to this run. */
function numUid() {
  return String(100000 + Math.floor(Math.random() * 1e9));
}

/** Connects to /dreamstudio as the seed's frontend does: auth {token, userId}. */
function user(sub, { name, ns = '/dreamstudio', ...options } = {}) {
  return connect(ns, { auth: { token: token(sub, { name }), userId: Number(sub) }, ...options });
}

/** The next `error` event: the seed's string and confab's {code, message}. */
function nextError(socket, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('error', on);
      reject(new Error(`no 'error' within ${ms} ms`));
    }, ms);
    const on = (text, detail) => {
      clearTimeout(timer);
      resolve({ text, detail });
    };
    socket.once('error', on);
  });
}

/** Emits `event` and expects the seed's error string and stable code. */
async function expectError(socket, event, payload, text, code) {
  const err = nextError(socket);
  socket.emit(event, payload);
  const { text: got, detail } = await err;
  const what = `${event} ${JSON.stringify(payload)?.slice(0, 80)}`;
  if (text instanceof RegExp) assert.match(got, text, what);
  else assert.equal(got, text, what);
  assert.equal(detail.code, code, what);
  assert.equal(typeof detail.message, 'string');
  assert.equal(socket.connected, true);
}

/** Joins a room and waits for the join to be done (the optional ack). */
async function join(socket, roomId) {
  const ack = await socket.emitWithAck('join_room', { roomId });
  assert.equal(ack.success, true, JSON.stringify(ack));
  return ack;
}

/** Two users, each connected, in one room both have joined. */
async function pair(options = {}) {
  const [a, b] = [numUid(), numUid()];
  const [ta, tb] = [token(a, { name: 'Alice' }), token(b, { name: 'Bob' })];
  const id = Number(await conversation(ta, [b]));
  const sa = await user(a, { name: 'Alice', ...options });
  const sb = await user(b, { name: 'Bob', ...options });
  await join(sa, id);
  // Bob's member:joined reaches Alice on her own connection, maybe after
  // Bob's ack: wait for it, so no test mistakes it for a later event.
  const announced = next(sa, 'member:joined');
  await join(sb, id);
  assert.equal((await announced).userId, Number(b));
  return { a, b, ta, tb, id, sa, sb };
}

/** Sends a message as `s` and returns its `message:new` as `s` sees it. */
async function send(s, roomId, content) {
  const m = next(s, 'message:new');
  s.emit('message:send', { roomId, content });
  return m;
}

describe('handshake', () => {
  test('auth {token, userId}: userId as a number or a string, or absent; a token from a header, cookie or query', async () => {
    const [sub, peer, other] = [numUid(), numUid(), numUid()];
    const t = token(sub, { name: 'Me' });
    const id = Number(await conversation(t, [peer]));
    /** Who the socket is: joining proves membership, sending shows the sender. */
    async function whoIs(s) {
      await join(s, id);
      const content = `who am i ${numUid()}`;
      const m = await send(s, id, content);
      assert.equal(m.content, content);
      assert.deepEqual(m.sender, { id: m.senderId, name: 'Me' });
      return m.senderId;
    }
    const me = Number(sub);
    assert.equal(await whoIs(await connect('/dreamstudio', { auth: { token: t, userId: me } })), me);
    assert.equal(await whoIs(await connect('/dreamstudio', { auth: { token: t, userId: sub } })), me);
    assert.equal(await whoIs(await connect('/dreamstudio', { auth: { token: t } })), me);
    // Without auth.token (userId then only names whom the token must be).
    assert.equal(await whoIs(await connect('/dreamstudio', { auth: { userId: me }, extraHeaders: { Authorization: `Bearer ${t}` } })), me);
    assert.equal(await whoIs(await connect('/dreamstudio', { extraHeaders: { Cookie: `theme=dark; accessToken=${t}` } })), me);
    assert.equal(await whoIs(await connect('/dreamstudio', { transports: ['websocket'], query: { token: t } })), me);
    // auth.token comes first: another user's token in the header changes nothing.
    const o = token(other, { name: 'Other' });
    const mixed = { auth: { token: t }, extraHeaders: { Authorization: `Bearer ${o}` }, query: { token: o } };
    assert.equal(await whoIs(await connect('/dreamstudio', mixed)), me);
  });

  test('a userId that is not the token subject is refused with a clear connect_error', async () => {
    const err = await refused('/dreamstudio', { auth: { token: token(numUid()), userId: 5 } });
    assert.equal(err.message, 'Authentication error: userId does not match the token');
    const bad = await refused('/dreamstudio', { auth: { token: token(numUid()), userId: { id: 5 } } });
    assert.match(bad.message, /^Authentication error/);
  });

  test('no token, a bad token or an expired one is refused with a stable code', async () => {
    assert.equal((await refused('/dreamstudio', { auth: { userId: 1 } })).message, 'AUTHENTICATION_REQUIRED');
    const forged = token('1', { secret: 'not-the-secret' });
    assert.equal((await refused('/dreamstudio', { auth: { token: forged, userId: 1 } })).message, 'INVALID_TOKEN');
    const expired = token('1', { expiresIn: -3600 });
    assert.equal((await refused('/dreamstudio', { auth: { token: expired, userId: 1 } })).message, 'TOKEN_EXPIRED');
  });
});

describe('transports and namespaces', () => {
  test('websocket only, and polling upgraded to websocket', async () => {
    for (const options of [{ transports: ['websocket'] }, {}]) {
      const { sa, sb, id } = await pair(options);
      const engine = sa.io.engine;
      if (engine.transport.name !== 'websocket') await new Promise((r) => engine.once('upgrade', r));
      sa.emit('message:send', { roomId: id, content: 'over websocket' });
      assert.equal((await next(sb, 'message:new')).content, 'over websocket');
    }
  });

  test('the default namespace / speaks dreamstudio (the seed connects to the bare URL)', async () => {
    const [a, b] = [numUid(), numUid()];
    const id = Number(await conversation(token(a), [b]));
    const sa = await user(a, { ns: '/' });
    const sb = await user(b);
    await join(sa, id);
    await join(sb, id);
    sa.emit('message:send', { roomId: id, content: 'Hello!', type: 'TEXT' });
    const [ma, mb] = await Promise.all([next(sa, 'message:new'), next(sb, 'message:new')]);
    assert.equal(ma.content, 'Hello!');
    assert.deepEqual(ma, mb);
  });
});

describe('rooms', () => {
  test('join_room: member:joined reaches the room, the joiner included, with numeric ids', async () => {
    const [a, b] = [numUid(), numUid()];
    const id = Number(await conversation(token(a), [b]));
    const sa = await user(a);
    const sb = await user(b);
    await join(sa, id);
    const seen = [next(sa, 'member:joined'), next(sb, 'member:joined')];
    const ack = await join(sb, id);
    assert.deepEqual(ack.data, { roomId: id });
    const [ja, jb] = await Promise.all(seen);
    assert.deepEqual(ja, jb);
    assert.equal(jb.userId, Number(b));
    assert.equal(typeof jb.userId, 'number');
    assert.equal(jb.roomId, id);
    assert.equal(typeof jb.roomId, 'number');
    assert.match(jb.timestamp, ISO);
  });

  test('a string roomId is accepted and rendered as a number', async () => {
    const [a, b] = [numUid(), numUid()];
    const id = await conversation(token(a), [b]);
    const sa = await user(a);
    const joined = next(sa, 'member:joined');
    sa.emit('join_room', { roomId: String(id) });
    assert.equal((await joined).roomId, Number(id));
  });

  test('join_room leaves the previous room: member:left there, its messages stop', async () => {
    const [a, b] = [numUid(), numUid()];
    const ta = token(a);
    const [room1, room2] = [Number(await conversation(ta, [b], 'one')), Number(await conversation(ta, [b], 'two'))];
    const sa = await user(a);
    const sb = await user(b);
    await join(sa, room1);
    await join(sb, room1);
    const left = next(sb, 'member:left');
    await join(sa, room2);
    const l = await left;
    assert.deepEqual([l.userId, l.roomId], [Number(a), room1]);
    assert.match(l.timestamp, ISO);
    // b's message in room 1 no longer reaches a; a's in room 2 does.
    const quiet = expectSilence(sa, 'message:new');
    await send(sb, room1, 'room one');
    await quiet;
    assert.equal((await send(sa, room2, 'room two')).roomId, room2);
  });

  test('leave_room: member:left to the others, and the leaver hears no more', async () => {
    const { a, sa, sb, id } = await pair();
    const left = next(sb, 'member:left');
    const quiet = expectSilence(sa, 'member:left');
    const none = expectSilence(sa, 'message:new');
    const ack = await sa.emitWithAck('leave_room', { roomId: id });
    assert.equal(ack.success, true);
    const l = await left;
    assert.deepEqual([l.userId, l.roomId], [Number(a), id]);
    assert.match(l.timestamp, ISO);
    await quiet;
    await send(sb, id, 'after leave');
    await none;
  });

  test('leaving a room the socket is not in announces nothing', async () => {
    const { sa, sb, id } = await pair();
    const eve = await user(numUid());
    const quiet = expectSilence([sa, sb, eve], 'member:left');
    const ack = await eve.emitWithAck('leave_room', { roomId: id });
    assert.equal(ack.success, true);
    await quiet;
  });

  test("a non-member's join is refused, announced nowhere, and they hear nothing", async () => {
    const { sa, sb, id } = await pair();
    const eve = await user(numUid());
    const quiet = expectSilence([sa, sb, eve], 'member:joined');
    const none = expectSilence(eve, 'message:new');
    await expectError(eve, 'join_room', { roomId: id }, 'Not a member of this room', 'NOT_A_MEMBER');
    await quiet;
    const heard = next(sb, 'message:new');
    await send(sa, id, 'members only');
    await heard;
    await none;
  });

  test('a refused join keeps the socket in its current room', async () => {
    const { sa, sb, id } = await pair();
    const other = Number(await conversation(token(numUid()), [numUid()]));
    await expectError(sa, 'join_room', { roomId: other }, 'Not a member of this room', 'NOT_A_MEMBER');
    const heard = next(sa, 'message:new');
    await send(sb, id, 'still here');
    assert.equal((await heard).content, 'still here');
  });

  test('join_room / leave_room: unknown room, missing or malformed roomId', async () => {
    const s = await user(numUid());
    await expectError(s, 'join_room', { roomId: 999999999 }, 'Room not found', 'CONVERSATION_NOT_FOUND');
    await expectError(s, 'join_room', {}, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(s, 'join_room', { roomId: 'general' }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(s, 'join_room', { roomId: true }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(s, 'join_room', undefined, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(s, 'leave_room', { room: 1 }, /^Invalid request: /, 'INVALID_ARGUMENT');
    const ack = await s.emitWithAck('join_room', { roomId: 999999999 });
    assert.deepEqual(ack, { success: false, error: 'Room not found', code: 'CONVERSATION_NOT_FOUND' });
  });
});

describe('messages', () => {
  test('two clients: message:new reaches the room, the sender included, in the seed shape', async () => {
    const { a, sa, sb, id } = await pair();
    sa.emit('message:send', { roomId: id, content: 'Hello team!', type: 'TEXT' });
    const [ma, mb] = await Promise.all([next(sa, 'message:new'), next(sb, 'message:new')]);
    assert.deepEqual(ma, mb);
    assert.equal(typeof mb.id, 'number');
    assert.ok(Number.isSafeInteger(mb.id) && mb.id > 0);
    assert.deepEqual(
      { ...mb, id: 0, createdAt: '' },
      {
        id: 0,
        roomId: id,
        senderId: Number(a),
        content: 'Hello team!',
        type: 'TEXT',
        fileUrl: null,
        createdAt: '',
        sender: { id: Number(a), name: 'Alice' },
      },
    );
    assert.match(mb.createdAt, ISO);
  });

  test('type defaults to TEXT; another type and a fileUrl come back as sent', async () => {
    const { sa, sb, id } = await pair();
    const first = next(sb, 'message:new');
    assert.equal((await send(sa, String(id), 'no type')).type, 'TEXT');
    assert.equal((await first).type, 'TEXT');
    const image = next(sb, 'message:new');
    sa.emit('message:send', { roomId: id, content: '', type: 'IMAGE', fileUrl: 'https://cdn.example.com/a.png' });
    const m = await image;
    assert.equal(m.type, 'IMAGE');
    assert.equal(m.fileUrl, 'https://cdn.example.com/a.png');
    assert.equal(m.content, '');
  });

  test('the optional ack answers the message:new payload', async () => {
    const { sa, id } = await pair();
    const ack = await sa.emitWithAck('message:send', { roomId: id, content: 'acked' });
    assert.equal(ack.success, true);
    assert.equal(ack.data.content, 'acked');
    assert.equal(typeof ack.data.id, 'number');
  });

  test('a message posted over REST arrives as message:new', async () => {
    const { ta, sb, id } = await pair();
    // Listening first: the event may arrive before the REST answer.
    const seen = next(sb, 'message:new');
    const { status, body } = await rest('POST', `/api/conversations/${id}/messages`, ta, { text: 'via REST' });
    assert.equal(status, 201);
    const m = await seen;
    assert.equal(m.id, Number(body.id));
    assert.equal(m.content, 'via REST');
  });

  test('message:edit → message:edited to the room', async () => {
    const { sa, sb, id } = await pair();
    const m = await send(sa, id, 'first draft');
    sa.emit('message:edit', { messageId: m.id, content: 'Updated content', roomId: id });
    const [ea, eb] = await Promise.all([next(sa, 'message:edited'), next(sb, 'message:edited')]);
    assert.deepEqual(ea, eb);
    assert.equal(eb.messageId, m.id);
    assert.equal(typeof eb.messageId, 'number');
    assert.equal(eb.roomId, id);
    assert.equal(eb.content, 'Updated content');
    assert.match(eb.updatedAt, ISO);
  });

  test('message:edited from a client is accepted as message:edit; roomId is optional', async () => {
    const { sa, sb, id } = await pair();
    const m = await send(sa, id, 'draft');
    sa.emit('message:edited', { messageId: String(m.id), content: 'via alias' });
    const e = await next(sb, 'message:edited');
    assert.deepEqual([e.messageId, e.content], [m.id, 'via alias']);
  });

  test('message:delete → message:deleted to the room', async () => {
    const { ta, sa, sb, id } = await pair();
    const m = await send(sa, id, 'oops');
    sa.emit('message:delete', { messageId: m.id, roomId: id });
    const [da, db] = await Promise.all([next(sa, 'message:deleted'), next(sb, 'message:deleted')]);
    assert.deepEqual(da, { messageId: m.id, roomId: id });
    assert.deepEqual(db, da);
    const history = await rest('GET', `/api/conversations/${id}/messages`, ta);
    assert.equal(history.body.messages[0].deleted, true);
  });
});

describe('errors', () => {
  test('message:send refusals: the seed strings, nothing stored, the socket stays up', async () => {
    const { ta, sa, sb, id } = await pair();
    const eve = await user(numUid());
    // Nobody hears any of the refused sends.
    const quiet = expectSilence([sa, sb, eve], 'message:new');
    await expectError(eve, 'message:send', { roomId: id, content: 'let me in' }, 'Not a member of this room', 'NOT_A_MEMBER');
    await expectError(sa, 'message:send', { content: 'no room' }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(sa, 'message:send', { roomId: id }, 'Message content is required', 'EMPTY_MESSAGE');
    await expectError(sa, 'message:send', { roomId: id, content: '   ' }, 'Message content is required', 'EMPTY_MESSAGE');
    await expectError(sa, 'message:send', { roomId: id, content: 42 }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(sa, 'message:send', { roomId: id, content: 'x'.repeat(10 * 1024 + 1) }, 'Message is too long', 'MESSAGE_TOO_LONG');
    await expectError(sa, 'message:send', { roomId: 999999999, content: 'nowhere' }, 'Room not found', 'CONVERSATION_NOT_FOUND');
    await expectError(sa, 'message:send', 'just a string', /^Invalid request: /, 'INVALID_ARGUMENT');
    await quiet;
    const history = await rest('GET', `/api/conversations/${id}/messages`, ta);
    assert.equal(history.body.messages.length, 0);
    assert.equal((await send(sa, id, 'x'.repeat(10 * 1024))).content.length, 10 * 1024);
  });

  test('message:edit refusals: not found, not the author, not a member, bad content', async () => {
    const { ta, sa, sb, id } = await pair();
    const m = await send(sa, id, 'original');
    const eve = await user(numUid());
    await expectError(sa, 'message:edit', { messageId: 999999999, content: 'x' }, 'Message not found', 'MESSAGE_NOT_FOUND');
    await expectError(sb, 'message:edit', { messageId: m.id, content: 'hijack' }, 'Not authorized to edit this message', 'NOT_AUTHOR');
    await expectError(eve, 'message:edit', { messageId: m.id, content: 'hijack' }, 'Not a member of this room', 'NOT_A_MEMBER');
    await expectError(sa, 'message:edit', { messageId: m.id, content: '' }, 'Message content is required', 'EMPTY_MESSAGE');
    await expectError(sa, 'message:edit', { messageId: m.id, content: 'x'.repeat(10 * 1024 + 1) }, 'Message is too long', 'MESSAGE_TOO_LONG');
    await expectError(sa, 'message:edit', { messageId: m.id }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(sa, 'message:edit', { content: 'x' }, /^Invalid request: /, 'INVALID_ARGUMENT');
    const history = await rest('GET', `/api/conversations/${id}/messages`, ta);
    assert.equal(history.body.messages[0].text, 'original');
    assert.equal(history.body.messages[0].editedAt, null);
  });

  test('message:delete refusals: not found, not the author, already deleted', async () => {
    const { sa, sb, id } = await pair();
    const m = await send(sa, id, 'keep me');
    await expectError(sa, 'message:delete', { messageId: 999999999 }, 'Message not found', 'MESSAGE_NOT_FOUND');
    await expectError(sb, 'message:delete', { messageId: m.id, roomId: id }, 'Not authorized to delete this message', 'NOT_AUTHOR');
    await expectError(sa, 'message:delete', { roomId: id }, /^Invalid request: /, 'INVALID_ARGUMENT');
    const ack = await sa.emitWithAck('message:delete', { messageId: m.id });
    assert.deepEqual(ack, { success: true, data: { messageId: m.id, roomId: id } });
    await expectError(sa, 'message:delete', { messageId: m.id }, 'Message not found', 'MESSAGE_GONE');
    await expectError(sa, 'message:edit', { messageId: m.id, content: 'too late' }, 'Message not found', 'MESSAGE_GONE');
  });
});

describe('across contracts', () => {
  test('a dreamstudio user and a raven user talk in one conversation, each in their own shape', async () => {
    const [d, r] = [numUid(), numUid()];
    const [td, tr] = [token(d, { name: 'Dana' }), token(r, { name: 'Rory' })];
    const id = await conversation(td, [r]);
    const sd = await user(d, { name: 'Dana' });
    const sr = await connect('/raven', { auth: { token: tr } });
    await join(sd, Number(id));
    const ack = await sr.emitWithAck('join_conversation', { conversation_id: id });
    assert.equal(ack.success, true);

    // dreamstudio → raven
    sd.emit('message:send', { roomId: Number(id), content: 'hi from dreamstudio' });
    // Dana's own copy too, so it is not mistaken for the reply below.
    const [atRaven] = await Promise.all([next(sr, 'new_message'), next(sd, 'message:new')]);
    assert.equal(atRaven.text, 'hi from dreamstudio');
    assert.equal(atRaven.conversationId, id);
    assert.equal(atRaven.senderId, d);
    assert.equal(atRaven.senderName, 'Dana');
    assert.equal(typeof atRaven.id, 'string');

    // raven → dreamstudio
    sr.emit('send_message', { conversation_id: id, text: 'hi from raven' });
    const atDream = await next(sd, 'message:new');
    assert.equal(atDream.content, 'hi from raven');
    assert.equal(atDream.roomId, Number(id));
    assert.equal(atDream.senderId, Number(r));
    assert.deepEqual(atDream.sender, { id: Number(r), name: 'Rory' });
    assert.equal(atDream.type, 'TEXT');
    assert.equal(typeof atDream.id, 'number');

    // A raven file message reads as a FILE with its fileUrl.
    sr.emit('send_message', { conversation_id: id, url: 'https://cdn.example.com/doc.pdf', fileName: 'doc.pdf' });
    const file = await next(sd, 'message:new');
    assert.deepEqual([file.type, file.fileUrl, file.content], ['FILE', 'https://cdn.example.com/doc.pdf', '']);
  });
});

describe('presence and typing', () => {
  /** Two users who share a conversation (made over REST), neither connected yet. */
  async function members() {
    const [a, b] = [numUid(), numUid()];
    const id = Number(await conversation(token(a, { name: 'Alice' }), [b]));
    return { a, b, id };
  }

  const near = (iso, from, to) => {
    assert.match(iso, ISO);
    const t = Date.parse(iso);
    assert.ok(t >= from - 1000 && t <= to + 1000, `${iso} not within the test's time`);
  };

  test('user:online {userId, socketId, timestamp} on the first socket, nothing for a second tab or closing one of two, user:offline on the last', async () => {
    const { a, b } = await members();
    const stranger = await user(numUid());
    const sb = await user(b, { name: 'Bob' });
    const t0 = Date.now();
    const online = next(sb, 'user:online');
    // Only the users who share a room hear any of it.
    const aloof = expectSilence(stranger, ['user:online', 'user:offline']);
    const a1 = await user(a, { name: 'Alice' });
    const seen = await online;
    assert.deepEqual(Object.keys(seen).sort(), ['socketId', 'timestamp', 'userId']);
    assert.equal(seen.userId, Number(a));
    assert.equal(seen.socketId, a1.id);
    near(seen.timestamp, t0, Date.now());
    const noSecond = expectSilence(sb, 'user:online');
    const a2 = await user(a, { name: 'Alice' });
    await noSecond;
    const stillOnline = expectSilence(sb, 'user:offline');
    a1.disconnect();
    await stillOnline;
    const t1 = Date.now();
    const offline = next(sb, 'user:offline');
    a2.disconnect();
    const gone = await offline;
    assert.deepEqual(Object.keys(gone).sort(), ['timestamp', 'userId']);
    assert.equal(gone.userId, Number(a));
    near(gone.timestamp, t1, Date.now());
    await aloof;
  });

  test('the 11th socket of one user gets connect_error TOO_MANY_CONNECTIONS', async () => {
    const a = numUid();
    const sockets = [];
    for (let i = 0; i < 10; i++) sockets.push(await user(a));
    const err = await refused('/dreamstudio', { auth: { token: token(a), userId: Number(a) } });
    assert.equal(err.message, 'TOO_MANY_CONNECTIONS');
    assert.ok(sockets.every((s) => s.connected));
    for (const s of sockets) s.disconnect();
  });

  test('user:typing and user:stop_typing reach the room, never any socket of the typist', async () => {
    const { a, b, id } = await members();
    const [a1, a2, sb] = [await user(a, { name: 'Alice' }), await user(a, { name: 'Alice' }), await user(b, { name: 'Bob' })];
    // Bob's second socket has not joined the room: it hears nothing (like messages).
    const b2 = await user(b, { name: 'Bob' });
    for (const s of [a1, a2, sb]) await join(s, id);
    const t0 = Date.now();
    const start = next(sb, 'user:typing');
    const quiet = expectSilence([a1, a2, b2], 'user:typing');
    a1.emit('user:typing', { roomId: id, userId: Number(a) });
    const typing = await start;
    assert.deepEqual(Object.keys(typing).sort(), ['roomId', 'timestamp', 'userId']);
    assert.equal(typing.userId, Number(a));
    assert.equal(typing.roomId, id);
    near(typing.timestamp, t0, Date.now());
    await quiet;
    const stop = next(sb, 'user:stop_typing');
    const stopQuiet = expectSilence([a1, a2, b2], 'user:stop_typing');
    a1.emit('user:stop_typing', { roomId: id, userId: Number(a) });
    assert.deepEqual(await stop, { userId: Number(a), roomId: id });
    await stopQuiet;
    // The seed's test client sends only the roomId; an ack, when passed, says what happened.
    const back = next(a2, 'user:typing');
    const ack = await sb.emitWithAck('user:typing', { roomId: String(id) });
    assert.deepEqual(ack, { success: true, data: { roomId: id, typing: true, relayed: true } });
    assert.equal((await back).userId, Number(b));
    sb.emit('user:stop_typing', { roomId: id });
    assert.deepEqual(await next(a1, 'user:stop_typing'), { userId: Number(b), roomId: id });
  });

  test('a user:typing nobody stops ends by itself as user:stop_typing', async () => {
    const { a, b, id } = await members();
    const [sa, sb] = [await user(a), await user(b)];
    await join(sa, id);
    await join(sb, id);
    // Neither the start nor its expiry reaches the typist.
    const mine = expectSilence(sa, ['user:typing', 'user:stop_typing']);
    const started = next(sb, 'user:typing');
    sa.emit('user:typing', { roomId: id });
    await started;
    assert.deepEqual(await next(sb, 'user:stop_typing', 8000), { userId: Number(a), roomId: id });
    await mine;
  });

  test("a non-member's typing: 'Not a member of this room' (NOT_A_MEMBER), nothing relayed; typing as someone else: 'Not authorized'", async () => {
    const { a, b, id } = await members();
    // Each socket emits only after another has connected since (its event
    // handlers are attached once the connect handler has run).
    const eve = numUid();
    const se = await user(eve);
    const [sa, sb] = [await user(a), await user(b)];
    await join(sa, id);
    await join(sb, id);
    const quiet = expectSilence([sa, sb, se], ['user:typing', 'user:stop_typing']);
    await expectError(se, 'user:typing', { roomId: id, userId: Number(eve) }, 'Not a member of this room', 'NOT_A_MEMBER');
    await expectError(se, 'user:stop_typing', { roomId: id }, 'Not a member of this room', 'NOT_A_MEMBER');
    await expectError(sa, 'user:typing', { roomId: id, userId: Number(b) }, 'Not authorized', 'PERMISSION_DENIED');
    await expectError(sa, 'user:typing', {}, /^Invalid request: /, 'INVALID_ARGUMENT');
    await quiet;
  });

  test('typing starts over 30 a minute are dropped silently (the seed\'s limit); stops always pass', async () => {
    const { a, b, id } = await members();
    const [sa, sb] = [await user(a), await user(b)];
    await join(sa, id);
    await join(sb, id);
    const noErrors = expectSilence(sa, 'error');
    // Bob's logs count what got through: Alice starts and stops, again and
    // again, so every start that reaches him is a new user:typing.
    const starts = record(sb, 'user:typing');
    const stops = record(sb, 'user:stop_typing');
    let relayed = 0;
    for (; relayed < 40; relayed++) {
      const start = await sa.emitWithAck('user:typing', { roomId: id });
      assert.equal(start.success, true);
      if (!start.data.relayed) break;
      assert.equal((await starts.count(relayed + 1)).at(-1).userId, Number(a));
      const stop = await sa.emitWithAck('user:stop_typing', { roomId: id });
      assert.equal(stop.data.relayed, true, 'stops always pass');
      assert.deepEqual((await stops.count(relayed + 1)).at(-1), { userId: Number(a), roomId: id });
    }
    // 30 a minute: the 31st start within the minute is dropped (a slow run
    // may have earned a start or three back by then).
    assert.ok(relayed >= 30 && relayed <= 33, `${relayed} starts relayed`);
    // The dropped start reached nobody: Bob heard each relayed start and
    // stop, and nothing else.
    await sleep(QUIET_MS);
    assert.equal(starts.seen.length, relayed, JSON.stringify(starts.seen.slice(relayed)));
    assert.equal(stops.seen.length, relayed);
    await noErrors;
    starts.stop();
    stops.stop();
  });

  test("a raven user's connect and disconnect are user:online / user:offline for a dreamstudio peer", async () => {
    const [d, r] = [numUid(), numUid()];
    const rtok = token(r, { name: 'Rory' });
    await conversation(rtok, [d]);
    const sd = await user(d);
    const online = next(sd, 'user:online');
    const sr = await connect('/raven', { auth: { token: rtok } });
    const seen = await online;
    assert.equal(seen.userId, Number(r));
    assert.equal(seen.socketId, sr.id);
    const offline = next(sd, 'user:offline');
    sr.disconnect();
    assert.equal((await offline).userId, Number(r));
  });
});

describe('chat-service restarts under a running edge', { skip: !process.env.CONFAB_CONTROL_URL }, () => {
  test('while it is down, sends get "Service unavailable" (no hang); afterwards messages flow again', async () => {
    const { sa, sb, id } = await pair();
    await control('stop');
    try {
      const err = nextError(sa, 8000);
      sa.emit('message:send', { roomId: id, content: 'into the void' });
      const { text, detail } = await err;
      assert.equal(text, 'Service unavailable');
      assert.equal(detail.code, 'UNAVAILABLE');
      assert.equal(sa.connected, true);
    } finally {
      await control('start');
    }
    await ready();
    sa.emit('message:send', { roomId: id, content: 'back again' });
    const [ma, mb] = await Promise.all([next(sa, 'message:new', 5000), next(sb, 'message:new', 5000)]);
    assert.equal(ma.content, 'back again');
    assert.equal(mb.content, 'back again');
  });
});

describe('calls', () => {
  const RING_MS = Number(process.env.CONFAB_CALL_RING_TIMEOUT_MS ?? 60000);
  const MAX_MS = Number(process.env.CONFAB_CALL_MAX_DURATION_MS ?? 10800000);
  const GRACE_MS = Number(process.env.CONFAB_CALL_DISCONNECT_GRACE_MS ?? 15000);
  const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\n' };
  const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\n' };
  const ICE = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };

  /** Alice, Bob and Carol in one room, each connected (not joined). */
  async function trio() {
    const [a, b, c] = [numUid(), numUid(), numUid()];
    const ta = token(a, { name: 'Alice' });
    const roomId = Number(await conversation(ta, [b, c], 'Studio'));
    const [sa, sb, sc] = [await user(a, { name: 'Alice' }), await user(b, { name: 'Bob' }), await user(c, { name: 'Carol' })];
    return { a, b, c, ta, roomId, sa, sb, sc };
  }

  /** Alice starts a room call; resolves with Bob's call:initiated. */
  async function start(sa, sb, roomId, callType = 'AUDIO') {
    const ring = next(sb, 'call:initiated');
    sa.emit('call:initiated', { callType, roomId, initiatedBy: 1 });
    return ring;
  }

  test('a room call rings every member on every tab; answers, signaling to the answering tab, end and the records', async () => {
    const { a, b, c, ta, roomId, sa, sb, sc } = await trio();
    const sb2 = await user(b, { name: 'Bob' });
    const rings = [next(sa, 'call:initiated'), next(sb2, 'call:initiated'), next(sc, 'call:initiated')];
    const ring = await start(sa, sb, roomId, 'video');
    assert.deepEqual(ring, { callId: ring.callId, callType: 'VIDEO', initiatedBy: Number(a), roomId, timestamp: ring.timestamp });
    assert.equal(typeof ring.callId, 'number');
    assert.match(ring.timestamp, ISO);
    for (const r of await Promise.all(rings)) assert.deepEqual(r, ring);
    const { callId } = ring;

    // Bob answers on one tab: everyone, his other tab included, hears it.
    const answered = [sa, sb2, sc].map((s) => next(s, 'call:answered'));
    sb.emit('call:answered', { callId, roomId });
    for (const x of await Promise.all(answered)) {
      assert.deepEqual(x, { callId, answeredBy: Number(b), roomId, timestamp: x.timestamp });
      assert.match(x.timestamp, ISO);
    }
    const cAnswered = next(sa, 'call:answered');
    sc.emit('call:answered', { callId });
    assert.equal((await cAnswered).answeredBy, Number(c));
    // Bob's other tab may not answer any more.
    await expectError(sb2, 'call:answered', { callId }, 'The call was already answered', 'CONFLICT');

    // Signaling (beyond the seed): to the answering tab only, untouched.
    const otherTab = expectSilence(sb2, ['call:offer', 'call:ice-candidate']);
    const offer = next(sb, 'call:offer');
    sa.emit('call:offer', { callId, to: Number(b), offer: OFFER });
    assert.deepEqual(await offer, { callId, from: Number(a), offer: OFFER });
    const answer = next(sa, 'call:answer');
    sb.emit('call:answer', { callId, to: Number(a), answer: ANSWER });
    assert.deepEqual(await answer, { callId, from: Number(b), answer: ANSWER });
    // No `to`: every other participant.
    const ices = [next(sa, 'call:ice-candidate'), next(sb, 'call:ice-candidate')];
    sc.emit('call:ice-candidate', { callId, candidate: ICE });
    for (const ice of await Promise.all(ices)) assert.deepEqual(ice, { callId, from: Number(c), candidate: ICE });
    await otherTab;

    await sleep(1100);
    const ends = [sa, sb, sb2, sc].map((s) => next(s, 'call:ended'));
    sa.emit('call:ended', { callId, roomId });
    for (const e of await Promise.all(ends)) {
      assert.deepEqual({ ...e, duration: undefined }, { callId, endedBy: Number(a), reason: 'user_ended', roomId, duration: undefined });
      assert.ok(e.duration >= 1, JSON.stringify(e));
    }
    const records = await rest('GET', `/api/calls?conversation=${roomId}`, ta);
    assert.equal(records.status, 200);
    assert.equal(records.body.calls.length, 1);
    const r = records.body.calls[0];
    assert.equal(r.id, String(callId));
    assert.equal(r.state, 'ended');
    assert.equal(r.media, 'video');
    assert.ok(r.durationMs >= 1000);
    assert.deepEqual(r.participants.map((p) => p.userId).sort(), [a, b, c].sort());
    for (const p of r.participants) assert.ok(p.joinedAt && p.leftAt, JSON.stringify(p));
  });

  test('call:ended while ringing: the caller cancels for everyone', async () => {
    const { a, roomId, sa, sb, sc } = await trio();
    const { callId } = await start(sa, sb, roomId);
    const ends = [sb, sc].map((s) => next(s, 'call:ended'));
    sa.emit('call:ended', { callId, roomId });
    for (const e of await Promise.all(ends)) assert.deepEqual(e, { callId, endedBy: Number(a), reason: 'cancelled', duration: 0, roomId });
  });

  test('refusals: not a member of the room, busy, a bad callType', async () => {
    const { roomId, sa, sb } = await trio();
    const eve = await user(numUid(), { name: 'Eve' });
    const quiet = expectSilence([sa, sb], 'call:initiated');
    await expectError(eve, 'call:initiated', { callType: 'AUDIO', roomId }, 'Not a member of this room', 'NOT_A_MEMBER');
    await expectError(sa, 'call:initiated', { callType: 'HOLOGRAM', roomId }, /^Invalid request: /, 'INVALID_ARGUMENT');
    await expectError(sa, 'call:initiated', {}, /^Invalid request: /, 'INVALID_ARGUMENT');
    await quiet;
    // Alice in an ongoing call cannot start another.
    const { callId } = await start(sa, sb, roomId);
    const answered = next(sa, 'call:answered');
    sb.emit('call:answered', { callId });
    await answered;
    await expectError(sa, 'call:initiated', { callType: 'AUDIO', roomId }, 'User is busy', 'USER_BUSY');
    sa.emit('call:ended', { callId });
    await next(sb, 'call:ended');
  });

  test("a non-participant's signal and answer are refused and forwarded to nobody", async () => {
    const { b, roomId, sa, sb } = await trio();
    const { callId } = await start(sa, sb, roomId);
    const answered = next(sa, 'call:answered');
    sb.emit('call:answered', { callId });
    await answered;
    const eve = await user(numUid(), { name: 'Eve' });
    const quiet = expectSilence([sa, sb], ['call:offer', 'call:ice-candidate', 'call:answered', 'call:ended']);
    await expectError(eve, 'call:offer', { callId, to: Number(b), offer: OFFER }, 'Not authorized', 'PERMISSION_DENIED');
    await expectError(eve, 'call:ice-candidate', { callId, candidate: ICE }, 'Not authorized', 'PERMISSION_DENIED');
    await expectError(eve, 'call:answered', { callId }, 'Not authorized', 'PERMISSION_DENIED');
    await expectError(eve, 'call:ended', { callId }, 'Not authorized', 'PERMISSION_DENIED');
    await expectError(eve, 'call:answered', { callId: 999999999 }, 'Call not found', 'NOT_FOUND');
    await quiet;
    sa.emit('call:ended', { callId });
    await next(sb, 'call:ended');
  });
  /** Alice starts a room call and Bob answers it on `sb`; resolves with the call id. */
  async function answeredCall(sa, sb, roomId) {
    const { callId } = await start(sa, sb, roomId);
    const answered = next(sa, 'call:answered');
    sb.emit('call:answered', { callId, roomId });
    await answered;
    return callId;
  }

  test('unanswered: call:ended {endedBy: "system", reason: "missed"} to everyone after the ring timeout; a late answer is refused', async () => {
    const { a, roomId, sa, sb, sc } = await trio();
    const ends = [sa, sb, sc].map((s) => next(s, 'call:ended', RING_MS + 3000));
    const started = Date.now();
    const { callId } = await start(sa, sb, roomId);
    for (const e of await Promise.all(ends)) {
      assert.deepEqual(e, { callId, endedBy: 'system', reason: 'missed', duration: 0, roomId });
    }
    assert.ok(Date.now() - started >= RING_MS - 100, 'not before the ring timeout');
    await expectError(sb, 'call:answered', { callId, roomId }, 'Call is missed', 'CONFLICT');
    const r = (await rest('GET', `/api/calls?conversation=${roomId}`, token(a))).body.calls[0];
    assert.deepEqual([r.id, r.state, r.endReason], [String(callId), 'missed', 'missed']);
  });

  test('an answered call ends at its maximum duration: call:ended {endedBy: "system", reason: "timeout"}', async () => {
    const { roomId, sa, sb, sc } = await trio();
    const ends = [sa, sb, sc].map((s) => next(s, 'call:ended', MAX_MS + 5000));
    const callId = await answeredCall(sa, sb, roomId);
    const since = Date.now();
    for (const e of await Promise.all(ends)) {
      assert.deepEqual({ ...e, duration: undefined }, { callId, endedBy: 'system', reason: 'timeout', duration: undefined, roomId });
      assert.ok(Math.abs(e.duration - MAX_MS / 1000) <= 1, JSON.stringify(e));
    }
    assert.ok(Date.now() - since >= MAX_MS - 300, 'not before the maximum duration');
  });

  test('one of the last two in a call drops and stays away past the grace: it ends, participant_disconnected', async () => {
    const { roomId, sa, sb, sc } = await trio();
    const callId = await answeredCall(sa, sb, roomId);
    const ends = [sa, sc].map((s) => next(s, 'call:ended', GRACE_MS + 3000));
    const dropped = Date.now();
    sb.disconnect();
    for (const e of await Promise.all(ends)) {
      assert.deepEqual({ ...e, duration: undefined }, { callId, endedBy: 'system', reason: 'participant_disconnected', duration: undefined, roomId });
    }
    assert.ok(Date.now() - dropped >= GRACE_MS - 100, 'not before the grace');
  });

  test('a participant who comes back within the grace stays in the call; signaling follows the new socket', async () => {
    const { a, b, roomId, sa, sb } = await trio();
    const callId = await answeredCall(sa, sb, roomId);
    const quiet = expectSilence(sa, ['call:ended', 'call:left'], { ms: GRACE_MS + 500 });
    sb.disconnect();
    await sleep(GRACE_MS / 3);
    const back = await user(b, { name: 'Bob' });
    await quiet;
    const offer = next(back, 'call:offer');
    sa.emit('call:offer', { callId, to: Number(b), offer: OFFER });
    assert.deepEqual(await offer, { callId, from: Number(a), offer: OFFER });
    const ended = next(sa, 'call:ended');
    back.emit('call:ended', { callId, roomId });
    assert.equal((await ended).reason, 'user_ended');
  });

  test('the sixth call start in a minute: "Too many calls, try again later" (RATE_LIMITED) with retryAfter, nobody rung', async () => {
    const { roomId, sa, sb } = await trio();
    for (let i = 0; i < 5; i++) {
      const { callId } = await start(sa, sb, roomId);
      const ack = await sa.emitWithAck('call:ended', { callId, roomId });
      assert.equal(ack.success, true, JSON.stringify(ack));
    }
    const quiet = expectSilence(sb, 'call:initiated');
    const err = nextError(sa);
    const ack = await sa.emitWithAck('call:initiated', { callType: 'AUDIO', roomId });
    assert.deepEqual(ack, { success: false, error: 'Too many calls, try again later', code: 'RATE_LIMITED', retryAfter: ack.retryAfter });
    assert.ok(ack.retryAfter >= 1 && ack.retryAfter <= 60, JSON.stringify(ack));
    const { text, detail } = await err;
    assert.equal(text, 'Too many calls, try again later');
    assert.deepEqual(detail, { code: 'RATE_LIMITED', message: detail.message, retryAfter: ack.retryAfter });
    assert.equal(typeof detail.message, 'string');
    await quiet;
  });

  test('in a call that goes on, one who declines or leaves gets call:ended on every tab; the rest get call:left and carry on', async () => {
    const [a, b, c, d] = [numUid(), numUid(), numUid(), numUid()];
    const ta = token(a, { name: 'Alice' });
    const roomId = Number(await conversation(ta, [b, c, d], 'Band'));
    const [sa, sb, sc, sd] = [await user(a), await user(b), await user(c), await user(d)];
    const sd2 = await user(d);
    const rings = [sc, sd, sd2].map((s) => next(s, 'call:initiated'));
    const callId = await answeredCall(sa, sb, roomId);
    await Promise.all(rings);
    const cIn = next(sa, 'call:answered');
    sc.emit('call:answered', { callId });
    await cIn;

    // Dave, still rung in the ongoing call, declines on one tab: the call
    // ended for him (his other tab stops ringing), the others hear he is out.
    const noEnd = expectSilence([sa, sb, sc], 'call:ended');
    const dEnds = [sd, sd2].map((s) => next(s, 'call:ended'));
    const lefts = [sa, sb, sc].map((s) => next(s, 'call:left'));
    const ack = await sd.emitWithAck('call:ended', { callId, roomId });
    assert.deepEqual(ack, { success: true, data: { callId } });
    for (const e of await Promise.all(dEnds)) assert.deepEqual(e, { callId, endedBy: Number(d), reason: 'declined', duration: 0, roomId });
    for (const l of await Promise.all(lefts)) {
      assert.deepEqual(l, { callId, userId: Number(d), reason: 'declined', roomId, timestamp: l.timestamp });
      assert.match(l.timestamp, ISO);
    }
    await noEnd;
    await expectError(sd2, 'call:answered', { callId }, 'You already declined or left this call', 'CONFLICT');

    // Carol leaves after a second in it: the call ended for her; Alice and
    // Bob hear it, Dave (out already) does not.
    await sleep(1100);
    const noEnd2 = expectSilence([sa, sb], 'call:ended');
    const daveQuiet = expectSilence([sd, sd2], ['call:left', 'call:ended']);
    const cEnded = next(sc, 'call:ended');
    const lefts2 = [sa, sb].map((s) => next(s, 'call:left'));
    sc.emit('call:ended', { callId, roomId });
    const ce = await cEnded;
    assert.deepEqual({ ...ce, duration: undefined }, { callId, endedBy: Number(c), reason: 'left', duration: undefined, roomId });
    assert.ok(ce.duration >= 1, JSON.stringify(ce));
    for (const l of await Promise.all(lefts2)) assert.deepEqual(l, { callId, userId: Number(c), reason: 'left', roomId, timestamp: l.timestamp });
    await noEnd2;
    await daveQuiet;

    // The call goes on for Alice and Bob.
    const offer = next(sb, 'call:offer');
    sa.emit('call:offer', { callId, to: Number(b), offer: OFFER });
    assert.deepEqual(await offer, { callId, from: Number(a), offer: OFFER });
    await expectError(sc, 'call:offer', { callId, to: Number(a), offer: OFFER }, 'Not authorized', 'PERMISSION_DENIED');
    const ends = [sa, sb].map((s) => next(s, 'call:ended'));
    sb.emit('call:ended', { callId, roomId });
    for (const e of await Promise.all(ends)) assert.equal(e.reason, 'user_ended');
    const r = (await rest('GET', `/api/calls?conversation=${roomId}`, ta)).body.calls[0];
    assert.equal(r.state, 'ended');
    const byUser = Object.fromEntries(r.participants.map((p) => [p.userId, p]));
    assert.ok(!byUser[d].joinedAt && byUser[d].leftAt, JSON.stringify(byUser[d]));
    assert.ok(byUser[c].joinedAt && byUser[c].leftAt < byUser[a].leftAt, JSON.stringify(r.participants));
  });
});

describe('token expiry during a connection', () => {
  test("requests on an expired socket get error 'Authentication error' {code: TOKEN_EXPIRED} (and a failed ack), nothing stored or delivered; refresh_token on the same socket makes them work; another user's token disconnects", async () => {
    const [a, b] = [numUid(), numUid()];
    const tb = token(b, { name: 'Bob' });
    const id = Number(await conversation(token(a, { name: 'Alice' }), [b]));
    const sb = await user(b, { name: 'Bob' });
    await join(sb, id);
    // `exp` 3 s ago: accepted at the handshake (5 s leeway), refused 2 s later.
    const sa = await connect('/dreamstudio', { auth: { token: token(a, { name: 'Alice', expiresIn: -3 }), userId: Number(a) } });
    await sleep(2500);
    const sid = sa.id;
    const expired = { text: 'Authentication error', detail: { code: 'TOKEN_EXPIRED', message: 'the token has expired' } };

    // With an ack: the ack fails and `error` says why; without one, `error`.
    // A refused join_room joins nothing: Bob hears no member:joined.
    const quiet = expectSilence(sb, ['message:new', 'user:typing', 'member:joined']);
    let error = nextError(sa);
    const ack = await sa.timeout(3000).emitWithAck('message:send', { roomId: id, content: 'too late' });
    assert.deepEqual(ack, { success: false, error: 'Authentication error', code: 'TOKEN_EXPIRED' });
    assert.deepEqual(await error, expired);
    error = nextError(sa);
    sa.emit('join_room', { roomId: id });
    assert.deepEqual(await error, expired);
    error = nextError(sa);
    sa.emit('message:send', { roomId: id, content: 'too late, no ack' });
    assert.deepEqual(await error, expired);
    error = nextError(sa);
    sa.emit('user:typing', { roomId: id });
    assert.deepEqual(await error, expired);
    await quiet;
    const { body } = await rest('GET', `/api/conversations/${id}/messages`, tb);
    assert.deepEqual(body.messages, []);

    // A token that does not verify refreshes nothing: the socket stays refused.
    error = nextError(sa);
    const bad = await sa.timeout(3000).emitWithAck('refresh_token', { token: 'abc.def' });
    assert.deepEqual(bad, { success: false, error: 'Authentication error', code: 'INVALID_TOKEN' });
    assert.equal((await error).detail.code, 'INVALID_TOKEN');
    error = nextError(sa);
    sa.emit('message:send', { roomId: id, content: 'still too late' });
    assert.deepEqual(await error, expired);

    // A fresh token: acked with its expiry, and the same socket joins and sends.
    const refreshed = await sa.timeout(3000).emitWithAck('refresh_token', { token: token(a, { name: 'Alice' }) });
    assert.equal(refreshed.success, true, JSON.stringify(refreshed));
    assert.match(refreshed.data.expiresAt, ISO);
    assert.equal(sa.id, sid);
    assert.equal(sa.connected, true);
    const joined = next(sb, 'member:joined');
    await join(sa, id);
    assert.equal((await joined).userId, Number(a));
    const got = next(sb, 'message:new');
    const sent = await sa.timeout(3000).emitWithAck('message:send', { roomId: id, content: 'in time' });
    assert.equal(sent.success, true, JSON.stringify(sent));
    const m = await got;
    assert.equal(m.content, 'in time');
    assert.equal(m.senderId, Number(a));

    // Another user's token: USER_MISMATCH, then disconnected.
    const mismatch = nextError(sa);
    const gone = next(sa, 'disconnect');
    const refusal = await sa.timeout(3000).emitWithAck('refresh_token', { token: tb });
    assert.deepEqual(refusal, { success: false, error: 'Authentication error', code: 'USER_MISMATCH' });
    assert.deepEqual(await mismatch, { text: 'Authentication error', detail: { code: 'USER_MISMATCH', message: 'the new token is for another user' } });
    assert.equal(await gone, 'io server disconnect');
  });
});
