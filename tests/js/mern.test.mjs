// The `mern` contract (seed 001) with the official socket.io-client: the
// `error` event on authentication failures, join_conversations with an array,
// send_message with its ack and receive_message in the seed's document shape,
// mark_read / messages_read, edit and soft delete with acks, every refusal
// with its stable code, two users in one conversation, a mern user
// talking with a raven user, and presence: user_online / user_offline to the
// users who share a conversation, the per-user socket limit, and typing →
// typing_status (never to the typist, expiring by itself, members only,
// throttled).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  QUIET_MS,
  URL,
  closeAll,
  connect,
  connected,
  conversation,
  expectSilence,
  next,
  open,
  record,
  rest,
  sleep,
  token,
  uid,
} from './confab.mjs';

const NS = '/mern';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const DELETED = 'This message was deleted';
const LIMIT = 10 * 1024;
// presence-service's typing TTL in the test app (its default unless the harness says otherwise).
const TYPING_TTL_MS = Number(process.env.CONFAB_TYPING_TTL_MS ?? 5000);

const unmanaged = new Set();
after(() => {
  closeAll();
  for (const s of unmanaged) s.disconnect();
});

/** A user with a token carrying a username and an avatar, as the seed's users have. */
function user(label, name) {
  const id = uid(label);
  const tok = token(id, { name, extra: { username: label, avatar: `https://cdn.example.com/${label}.png` } });
  return { id, tok };
}

const mern = (tok, options = {}) => connect(NS, { auth: { token: tok }, ...options });

/** Joins with an ack (a confab addition) so the test knows the rooms are joined. */
async function joinAll(socket, ids) {
  const ack = await socket.emitWithAck('join_conversations', ids);
  assert.equal(ack.success, true, JSON.stringify(ack));
  return ack;
}

/** Alice and Bob, each connected to /mern, in one conversation both joined. */
async function pair() {
  const alice = user('alice', 'Alice');
  const bob = user('bob', 'Bob');
  const id = await conversation(alice.tok, [bob.id]);
  const sa = await mern(alice.tok);
  const sb = await mern(bob.tok);
  await joinAll(sa, [id]);
  await joinAll(sb, [id]);
  return { alice, bob, id, sa, sb };
}

/** Sends `content` as `socket` and returns the acked message. */
async function send(socket, conversationId, content) {
  const ack = await socket.emitWithAck('send_message', { conversationId, content, type: 'text' });
  assert.equal(ack.success, true, JSON.stringify(ack));
  return ack.message;
}

/**
 * Starts waiting for each `[socket, event]`, then runs `action`; resolves to
 * `[its result, ...the events]`. (An event can arrive before an ack, so the
 * listeners must be in place first.)
 */
async function act(action, ...waits) {
  const pending = waits.map(([socket, event]) => next(socket, event));
  for (const p of pending) p.catch(() => {});
  const result = await action();
  return [result, ...(await Promise.all(pending))];
}

/**
 * Connects with a bad or missing token, listeners attached before the
 * handshake, and resolves at the disconnect with what arrived meanwhile.
 */
function authFailure(options, namespace = NS) {
  return new Promise((resolve, reject) => {
    const s = io(URL + namespace, { reconnection: false, forceNew: true, timeout: 5000, ...options });
    unmanaged.add(s);
    const seen = { errors: [] };
    const timer = setTimeout(() => reject(new Error('not disconnected within 3 s')), 3000);
    s.on('error', (e) => seen.errors.push(e));
    s.on('connect_error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connect_error instead of the error event: ${e.message}`));
    });
    s.on('disconnect', (reason) => {
      clearTimeout(timer);
      resolve({ ...seen, reason });
    });
  });
}

describe('authentication', () => {
  for (const [what, options, code] of [
    ['no token', {}, 'AUTHENTICATION_REQUIRED'],
    ['a token signed with another secret', { auth: { token: token('x', { secret: 'not-the-secret' }) } }, 'INVALID_TOKEN'],
    ['a garbage token', { auth: { token: 'abc.def' } }, 'INVALID_TOKEN'],
    ['an expired token', { auth: { token: token('x', { expiresIn: -3600 }) } }, 'TOKEN_EXPIRED'],
  ]) {
    test(`${what}: the error event the frontend logs out on, then a disconnect`, async () => {
      const { errors, reason } = await authFailure(options);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0].code, code);
      // The seed's frontend: `if (error.message.includes('Authentication')) logout()`.
      assert.ok(errors[0].message.includes('Authentication'), errors[0].message);
      assert.equal(reason, 'io server disconnect');
    });
  }

  test('auth.token of a valid token: connected, no error', async () => {
    // Listening before the handshake: an error sent right after it is seen.
    const s = open(NS, { auth: { token: token(uid()) } });
    const quiet = expectSilence(s, 'error');
    await connected(s);
    await quiet;
    assert.equal(s.connected, true);
  });

  test('websocket-only clients get the same error event', async () => {
    const { errors } = await authFailure({ transports: ['websocket'], auth: { token: 'abc.def' } });
    assert.equal(errors[0].code, 'INVALID_TOKEN');
  });
});

describe('join_conversations', () => {
  test('joins the rooms of member conversations; a socket that did not join hears nothing', async () => {
    const { bob, id, sa, sb } = await pair();
    const idle = await mern(bob.tok);
    const quiet = expectSilence(idle, 'receive_message');
    const [, got] = await act(() => send(sa, id, 'rooms'), [sb, 'receive_message']);
    assert.equal(got.message.content, 'rooms');
    await quiet;
  });

  test('an id written differently ("007" for 7) joins the same room: its socket hears the messages', async () => {
    const alice = user('alice', 'Alice');
    const bob = user('bob', 'Bob');
    const id = await conversation(alice.tok, [bob.id]);
    const sa = await mern(alice.tok);
    const sb = await mern(bob.tok);
    await joinAll(sa, [id]);
    const ack = await joinAll(sb, [`00${id}`]);
    assert.deepEqual(ack.joined, [`00${id}`]);
    const [, got] = await act(() => send(sa, id, 'padded'), [sb, 'receive_message']);
    assert.equal(got.message.content, 'padded');
  });

  test('as the seed sends it (no ack): refused ids get error, the others are joined', async () => {
    const alice = user('alice', 'Alice');
    const bob = user('bob', 'Bob');
    const carol = user('carol', 'Carol');
    const shared = await conversation(alice.tok, [bob.id]);
    const foreign = await conversation(carol.tok, [alice.id]);
    const sa = await mern(alice.tok);
    const sb = await mern(bob.tok);
    await joinAll(sa, [shared, foreign]);
    sb.emit('join_conversations', [shared, foreign]);
    const err = await next(sb, 'error');
    assert.deepEqual(Object.keys(err).sort(), ['code', 'conversationId', 'event', 'message']);
    assert.equal(err.code, 'NOT_A_MEMBER');
    assert.equal(err.event, 'join_conversations');
    assert.equal(err.conversationId, foreign);
    assert.equal(err.message.includes('Authentication'), false);
    // The refusal is answered after the joins, so bob is in `shared` now.
    const [, got] = await act(() => send(sa, shared, 'joined without an ack'), [sb, 'receive_message']);
    assert.equal(got.message.content, 'joined without an ack');
    const quiet = expectSilence(sb, 'receive_message');
    await send(sa, foreign, 'not for bob');
    await quiet;
    assert.equal(sb.connected, true);
  });

  test('every refusal has its stable code; the ack lists joined and failed ids', async () => {
    const { alice, id } = await pair();
    const s = await mern(alice.tok);
    const ack = await s.emitWithAck('join_conversations', [id, 999999999, 'abc', { id }, id, '']);
    assert.equal(ack.success, false);
    assert.deepEqual(ack.joined, [id]);
    assert.deepEqual(
      ack.failed.map((f) => [f.conversationId, f.code]),
      [
        ['999999999', 'CONVERSATION_NOT_FOUND'],
        ['abc', 'INVALID_ARGUMENT'],
        [{ id }, 'INVALID_ARGUMENT'],
        ['', 'INVALID_ARGUMENT'],
      ],
    );
    for (const f of ack.failed) assert.equal(typeof f.error, 'string');
    assert.deepEqual(await s.emitWithAck('join_conversations', []), { success: true, joined: [], failed: [] });
  });

  test('a payload that is not an array is refused, with or without an ack', async () => {
    const s = await mern(token(uid()));
    for (const payload of [{ conversationIds: ['1'] }, '1', 7]) {
      const ack = await s.emitWithAck('join_conversations', payload);
      assert.equal(ack.success, false);
      assert.equal(ack.code, 'INVALID_ARGUMENT');
      assert.equal(typeof ack.error, 'string');
    }
    const tooMany = await s.emitWithAck('join_conversations', Array.from({ length: 1001 }, (_, i) => String(i + 1)));
    assert.deepEqual([tooMany.success, tooMany.code], [false, 'INVALID_ARGUMENT']);
    s.emit('join_conversations');
    const err = await next(s, 'error');
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.event, 'join_conversations');
    assert.equal(s.connected, true);
  });

  test("a non-member's join is refused and they hear nothing", async () => {
    const { id, sa, sb } = await pair();
    const eve = await mern(token(uid('eve')));
    const quiet = expectSilence(eve, 'receive_message');
    const ack = await eve.emitWithAck('join_conversations', [id]);
    assert.equal(ack.success, false);
    assert.equal(ack.failed[0].code, 'NOT_A_MEMBER');
    const [m, got] = await act(() => send(sa, id, 'members only'), [sb, 'receive_message']);
    assert.equal(got.message._id, m._id);
    await quiet;
  });
});

describe('send_message and receive_message', () => {
  test('two clients: the ack carries the message, the other gets receive_message in the same shape', async () => {
    const { alice, id, sa, sb } = await pair();
    const [ack, got] = await act(
      () => sa.emitWithAck('send_message', { conversationId: id, content: 'Hello, how are you?', type: 'text' }),
      [sb, 'receive_message'],
    );
    assert.equal(ack.success, true);
    const m = ack.message;
    assert.equal(typeof m._id, 'string');
    assert.equal(m.conversationId, id);
    assert.deepEqual(m.sender, { _id: alice.id, username: 'alice', avatar: 'https://cdn.example.com/alice.png' });
    assert.equal(m.content, 'Hello, how are you?');
    assert.equal(m.type, 'text');
    assert.equal(m.status, 'sent');
    assert.equal(m.edited, false);
    assert.equal(m.deleted, false);
    assert.match(m.createdAt, ISO);
    assert.equal(m.updatedAt, m.createdAt);
    assert.equal(m.fileUrl, undefined);
    assert.deepEqual(got, { message: m, conversationId: id });
  });

  test("the sending socket gets no echo; the sender's other sockets do", async () => {
    const { alice, id, sa, sb } = await pair();
    const sa2 = await mern(alice.tok);
    await joinAll(sa2, [id]);
    const echo = expectSilence(sa, 'receive_message');
    const [m, a2, b] = await act(() => send(sa, id, 'one bubble'), [sa2, 'receive_message'], [sb, 'receive_message']);
    assert.equal(a2.message._id, m._id);
    assert.equal(b.message._id, m._id);
    await echo;
    // The reply goes the other way: bob's own socket is the one left out.
    const bobEcho = expectSilence(sb, 'receive_message');
    const [r, ra, ra2] = await act(() => send(sb, id, 'reply'), [sa, 'receive_message'], [sa2, 'receive_message']);
    assert.equal(ra.message._id, r._id);
    assert.equal(ra2.message._id, r._id);
    await bobEcho;
  });

  test('a file message: type, fileUrl and fileName', async () => {
    const { id, sa, sb } = await pair();
    const [ack, { message }] = await act(
      () =>
        sa.emitWithAck('send_message', {
          conversationId: id,
          content: '',
          type: 'image',
          fileUrl: 'https://cdn.example.com/image.jpg',
          fileName: 'image.jpg',
        }),
      [sb, 'receive_message'],
    );
    assert.equal(ack.success, true, JSON.stringify(ack));
    assert.equal(message.type, 'image');
    assert.equal(message.fileUrl, 'https://cdn.example.com/image.jpg');
    assert.equal(message.fileName, 'image.jpg');
    assert.equal(message.content, '');
    // A file without a type is a "file".
    const [, file] = await act(
      () => sa.emitWithAck('send_message', { conversationId: id, fileUrl: 'https://cdn.example.com/a.pdf' }),
      [sb, 'receive_message'],
    );
    assert.equal(file.message.type, 'file');
  });

  test('a numeric conversationId is accepted; ids come back as strings', async () => {
    const { id, sa, sb } = await pair();
    const [m, got] = await act(() => send(sa, Number(id), 'numeric id'), [sb, 'receive_message']);
    assert.equal(m.conversationId, id);
    assert.equal(got.conversationId, id);
  });

  test('a message posted over REST reaches every joined socket, the poster included', async () => {
    const { alice, id, sa, sb } = await pair();
    const [{ status, body }, ma, mb] = await act(
      () => rest('POST', `/api/conversations/${id}/messages`, alice.tok, { text: 'via REST' }),
      [sa, 'receive_message'],
      [sb, 'receive_message'],
    );
    assert.equal(status, 201);
    assert.equal(ma.message._id, body.id);
    assert.deepEqual(ma, mb);
  });

  test('every refusal: ack {success: false, error, code}, nothing stored, the socket stays up', async () => {
    const { alice, id, sa, sb } = await pair();
    const cases = [
      [{ content: 'no conversation' }, 'INVALID_ARGUMENT'],
      ['just a string', 'INVALID_ARGUMENT'],
      [{ conversationId: id, content: 42 }, 'INVALID_ARGUMENT'],
      [{ conversationId: id, content: 'x', type: 5 }, 'INVALID_ARGUMENT'],
      [{ conversationId: id }, 'EMPTY_MESSAGE'],
      [{ conversationId: id, content: '   ', type: 'text' }, 'EMPTY_MESSAGE'],
      [{ conversationId: id, content: 'x'.repeat(LIMIT + 1) }, 'MESSAGE_TOO_LONG'],
      [{ conversationId: id, content: 'x', type: 't'.repeat(33) }, 'INVALID_ARGUMENT'],
      [{ conversationId: '999999999', content: 'nowhere' }, 'CONVERSATION_NOT_FOUND'],
      [{ conversationId: 'abc', content: 'bad id' }, 'INVALID_ARGUMENT'],
    ];
    const quiet = expectSilence([sa, sb], 'receive_message');
    for (const [payload, code] of cases) {
      const ack = await sa.emitWithAck('send_message', payload);
      const label = JSON.stringify(payload).slice(0, 80);
      assert.equal(ack.success, false, label);
      assert.equal(ack.code, code, label);
      assert.equal(typeof ack.error, 'string', label);
    }
    await quiet;
    assert.equal(sa.connected, true);
    const history = await rest('GET', `/api/conversations/${id}/messages`, alice.tok);
    assert.equal(history.body.messages.length, 0);
    assert.equal((await send(sa, id, 'x'.repeat(LIMIT))).content.length, LIMIT);
  });

  test("a non-member's send is refused with NOT_A_MEMBER and nobody hears it", async () => {
    const { alice, id, sa, sb } = await pair();
    const eve = await mern(token(uid('eve')));
    const quiet = expectSilence([sa, sb, eve], 'receive_message');
    const ack = await eve.emitWithAck('send_message', { conversationId: id, content: 'let me in' });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_A_MEMBER']);
    await quiet;
    const history = await rest('GET', `/api/conversations/${id}/messages`, alice.tok);
    assert.equal(history.body.messages.length, 0);
  });

  test('without an ack a refusal is the error event', async () => {
    const { id, sa } = await pair();
    sa.emit('send_message', { conversationId: id, content: '' });
    const err = await next(sa, 'error');
    assert.deepEqual(Object.keys(err).sort(), ['code', 'event', 'message']);
    assert.equal(err.code, 'EMPTY_MESSAGE');
    assert.equal(err.event, 'send_message');
  });
});

describe('mark_read and messages_read', () => {
  test("the reader's receipt reaches the room, the reader's sockets included", async () => {
    const { bob, id, sa, sb } = await pair();
    const [m1] = await act(() => send(sa, id, 'one'), [sb, 'receive_message']);
    const [m2] = await act(() => send(sa, id, 'two'), [sb, 'receive_message']);
    // As the seed's frontend sends it: no ack.
    sb.emit('mark_read', { conversationId: id, messageIds: [m1._id, m2._id] });
    const [ra, rb] = await Promise.all([next(sa, 'messages_read'), next(sb, 'messages_read')]);
    assert.deepEqual(ra, { conversationId: id, messageIds: [m1._id, m2._id], readBy: bob.id });
    assert.deepEqual(rb, ra);
    // Nothing newly read: no event, an empty list in the ack.
    const quiet = expectSilence([sa, sb], 'messages_read');
    const ack = await sb.emitWithAck('mark_read', { conversationId: id, messageIds: [m2._id] });
    assert.deepEqual(ack, { success: true, messageIds: [] });
    await quiet;
  });

  test('marking the newest reads everything before it; own messages are never listed', async () => {
    const { bob, id, sa, sb } = await pair();
    const m1 = await send(sa, id, 'first');
    const mine = await send(sb, id, 'mine');
    const m3 = await send(sa, id, 'third');
    const [ack, r] = await act(
      () => sb.emitWithAck('mark_read', { conversationId: id, messageIds: [m3._id] }),
      [sa, 'messages_read'],
    );
    assert.deepEqual(ack, { success: true, messageIds: [m1._id, m3._id] });
    assert.deepEqual(r.messageIds, [m1._id, m3._id]);
    assert.equal(r.readBy, bob.id);
    assert.equal(r.messageIds.includes(mine._id), false);
  });

  test('refusals: bad ids, a message of another conversation, a non-member', async () => {
    const { alice, bob, id, sa, sb } = await pair();
    const m = await send(sa, id, 'here');
    const other = await conversation(alice.tok, [bob.id], 'other');
    const cases = [
      [{ conversationId: id }, 'INVALID_ARGUMENT'],
      [{ conversationId: id, messageIds: [] }, 'INVALID_ARGUMENT'],
      [{ conversationId: id, messageIds: ['abc'] }, 'INVALID_ARGUMENT'],
      [{ conversationId: id, messageIds: m._id }, 'INVALID_ARGUMENT'],
      [{ messageIds: [m._id] }, 'INVALID_ARGUMENT'],
      [{ conversationId: other, messageIds: [m._id] }, 'MESSAGE_NOT_FOUND'],
      [{ conversationId: '999999999', messageIds: [m._id] }, 'CONVERSATION_NOT_FOUND'],
    ];
    const eve = await mern(token(uid('eve')));
    const quiet = expectSilence([sa, sb, eve], 'messages_read');
    for (const [payload, code] of cases) {
      const ack = await sb.emitWithAck('mark_read', payload);
      assert.deepEqual([ack.success, ack.code], [false, code], JSON.stringify(payload));
    }
    eve.emit('mark_read', { conversationId: id, messageIds: [m._id] });
    const err = await next(eve, 'error');
    assert.deepEqual([err.code, err.event], ['NOT_A_MEMBER', 'mark_read']);
    await quiet;
  });
});

describe('edit_message and message_edited', () => {
  test('the author edits: ack {success: true}, message_edited to the room', async () => {
    const { id, sa, sb } = await pair();
    const [m] = await act(() => send(sa, id, 'typo'), [sb, 'receive_message']);
    const [ack, ea, eb] = await act(
      () => sa.emitWithAck('edit_message', { messageId: m._id, newContent: 'Updated message content' }),
      [sa, 'message_edited'],
      [sb, 'message_edited'],
    );
    assert.deepEqual(ack, { success: true });
    assert.deepEqual(Object.keys(eb).sort(), ['conversationId', 'editedAt', 'messageId', 'newContent']);
    assert.equal(eb.messageId, m._id);
    assert.equal(eb.newContent, 'Updated message content');
    assert.equal(eb.conversationId, id);
    assert.match(eb.editedAt, ISO);
    assert.deepEqual(ea, eb);
  });

  test('refusals: ack {success: false, message, code}, nothing changes', async () => {
    const { alice, id, sa, sb } = await pair();
    const m = await send(sa, id, 'original');
    const eve = await mern(token(uid('eve')));
    const cases = [
      [sb, { messageId: m._id, newContent: 'not yours' }, 'NOT_AUTHOR'],
      [eve, { messageId: m._id, newContent: 'not a member' }, 'NOT_A_MEMBER'],
      [sa, { messageId: '999999999', newContent: 'nowhere' }, 'MESSAGE_NOT_FOUND'],
      [sa, { messageId: m._id, newContent: '' }, 'EMPTY_MESSAGE'],
      [sa, { messageId: m._id, newContent: 'x'.repeat(LIMIT + 1) }, 'MESSAGE_TOO_LONG'],
      [sa, { messageId: m._id, newContent: 5 }, 'INVALID_ARGUMENT'],
      [sa, { messageId: m._id }, 'INVALID_ARGUMENT'],
      [sa, { newContent: 'which one?' }, 'INVALID_ARGUMENT'],
    ];
    const quiet = expectSilence([sa, sb], 'message_edited');
    for (const [s, payload, code] of cases) {
      const ack = await s.emitWithAck('edit_message', payload);
      const label = JSON.stringify(payload).slice(0, 80);
      assert.deepEqual([ack.success, ack.code], [false, code], label);
      assert.equal(typeof ack.message, 'string', label);
    }
    await quiet;
    const history = await rest('GET', `/api/conversations/${id}/messages`, alice.tok);
    assert.equal(history.body.messages[0].text, 'original');
    sb.emit('edit_message', { messageId: m._id, newContent: 'no ack' });
    const err = await next(sb, 'error');
    assert.deepEqual([err.code, err.event], ['NOT_AUTHOR', 'edit_message']);
  });
});

describe('delete_message and message_deleted', () => {
  test('soft delete: ack, message_deleted to the room, the message stays as deleted', async () => {
    const { alice, id, sa, sb } = await pair();
    const [m] = await act(() => send(sa, id, 'regret'), [sb, 'receive_message']);
    const [ack, da, db] = await act(
      () => sa.emitWithAck('delete_message', { messageId: m._id }),
      [sa, 'message_deleted'],
      [sb, 'message_deleted'],
    );
    assert.deepEqual(ack, { success: true });
    assert.deepEqual(db, { messageId: m._id, conversationId: id });
    assert.deepEqual(da, db);
    const history = await rest('GET', `/api/conversations/${id}/messages`, alice.tok);
    assert.deepEqual(history.body.messages.map((x) => [x.id, x.deleted, x.text]), [[m._id, true, '']]);
  });

  test('refusals: not the author, already deleted, unknown or missing id', async () => {
    const { id, sa, sb } = await pair();
    const m = await send(sa, id, 'mine');
    let ack = await sb.emitWithAck('delete_message', { messageId: m._id });
    assert.deepEqual([ack.success, ack.code], [false, 'NOT_AUTHOR']);
    assert.equal(typeof ack.message, 'string');
    await act(() => sa.emitWithAck('delete_message', { messageId: m._id }), [sb, 'message_deleted']);
    for (const [event, payload, code] of [
      ['delete_message', { messageId: m._id }, 'MESSAGE_GONE'],
      ['edit_message', { messageId: m._id, newContent: 'revive' }, 'MESSAGE_GONE'],
      ['delete_message', { messageId: '999999999' }, 'MESSAGE_NOT_FOUND'],
      ['delete_message', {}, 'INVALID_ARGUMENT'],
      ['delete_message', { messageId: null }, 'INVALID_ARGUMENT'],
    ]) {
      ack = await sa.emitWithAck(event, payload);
      assert.deepEqual([ack.success, ack.code], [false, code], `${event} ${JSON.stringify(payload)}`);
    }
    sa.emit('delete_message', { messageId: m._id });
    const err = await next(sa, 'error');
    assert.deepEqual([err.code, err.event], ['MESSAGE_GONE', 'delete_message']);
  });
});

describe('across contracts', () => {
  test('a mern user and a raven user talk in one conversation, each in their own shape', async () => {
    const alice = user('alice', 'Alice');
    const raven = uid('raven');
    const tr = token(raven, { name: 'Raven' });
    const id = await conversation(alice.tok, [raven]);
    const sm = await mern(alice.tok);
    await joinAll(sm, [id]);
    const sr = await connect('/raven', { auth: { token: tr } });
    const joined = await sr.emitWithAck('join_conversation', { conversation_id: id });
    assert.equal(joined.success, true, JSON.stringify(joined));

    const [m, nr] = await act(() => send(sm, id, 'hello from mern'), [sr, 'new_message']);
    assert.equal(nr.id, m._id);
    assert.equal(nr.conversationId, id);
    assert.equal(nr.senderId, alice.id);
    assert.equal(nr.senderName, 'Alice');
    assert.equal(nr.text, 'hello from mern');
    assert.equal(nr.createdAt, m.createdAt);

    sr.emit('send_message', { conversation_id: id, text: 'hello from raven' });
    const { message, conversationId } = await next(sm, 'receive_message');
    assert.equal(conversationId, id);
    assert.deepEqual(message.sender, { _id: raven, username: 'Raven', avatar: '' });
    assert.equal(message.content, 'hello from raven');
    assert.equal(message.type, 'text');
    assert.match(message.createdAt, ISO);

    // The mern user reads the raven user's message; edits and deletes reach mern sockets.
    sm.emit('mark_read', { conversationId: id, messageIds: [message._id] });
    assert.deepEqual(await next(sm, 'messages_read'), { conversationId: id, messageIds: [message._id], readBy: alice.id });
    const [ack, edited] = await act(
      () => sm.emitWithAck('edit_message', { messageId: m._id, newContent: 'edited in mern' }),
      [sm, 'message_edited'],
    );
    assert.deepEqual(ack, { success: true });
    assert.equal(edited.newContent, 'edited in mern');
  });
});

describe('presence and typing', () => {
  /**
   * Opens a socket of `tok` with its listeners in place before the handshake:
   * resolves to the `error` event's code, or 'connected' when none came within QUIET_MS.
   */
  function attempt(tok) {
    return new Promise((resolve) => {
      const s = io(URL + NS, { reconnection: false, forceNew: true, timeout: 5000, auth: { token: tok } });
      unmanaged.add(s);
      let timer;
      s.on('error', (e) => {
        clearTimeout(timer);
        resolve(e.code);
      });
      s.on('connect', () => {
        timer = setTimeout(() => resolve('connected'), QUIET_MS);
      });
      s.on('connect_error', (e) => resolve(`connect_error ${e.message}`));
    });
  }

  /** Alice and Bob share a conversation; only Bob is connected (and has joined it). */
  async function watched() {
    const alice = user('alice', 'Alice');
    const bob = user('bob', 'Bob');
    const id = await conversation(alice.tok, [bob.id]);
    const sb = await mern(bob.tok);
    await joinAll(sb, [id]);
    return { alice, bob, id, sb };
  }

  test('user_online at the first socket, nothing for a second tab, user_offline with lastSeen at the last', async () => {
    const { alice, sb } = await watched();
    const stranger = await mern(user('eve', 'Eve').tok);
    // Only the users who share a conversation hear any of it.
    const aloof = expectSilence(stranger, ['user_online', 'user_offline']);

    const [sa1, online] = await act(() => mern(alice.tok), [sb, 'user_online']);
    assert.deepEqual(online, { userId: alice.id, username: 'alice' });

    // A second tab: still the same online user, no event either way.
    const quiet = expectSilence(sb, 'user_online');
    const sa2 = await mern(alice.tok);
    await quiet;
    const stillOnline = expectSilence(sb, 'user_offline');
    sa2.disconnect();
    await stillOnline;

    const before = Date.now();
    const [, offline] = await act(async () => sa1.disconnect(), [sb, 'user_offline']);
    assert.deepEqual(Object.keys(offline).sort(), ['lastSeen', 'userId', 'username']);
    assert.equal(offline.userId, alice.id);
    assert.equal(offline.username, 'alice');
    assert.match(offline.lastSeen, ISO);
    const lastSeen = Date.parse(offline.lastSeen);
    assert.ok(lastSeen >= before - 1000 && lastSeen <= Date.now() + 1000, offline.lastSeen);
    await aloof;
  });

  test('the 11th socket of one user gets the error event TOO_MANY_CONNECTIONS and is disconnected', async () => {
    const alice = user('alice', 'Alice');
    const tabs = [];
    for (let i = 0; i < 10; i++) tabs.push(await mern(alice.tok));
    const { errors, reason } = await authFailure({ auth: { token: alice.tok } });
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].code, 'TOO_MANY_CONNECTIONS');
    // Not an authentication failure: the seed's frontend must not log out.
    assert.ok(!errors[0].message.includes('Authentication'), errors[0].message);
    assert.equal(reason, 'io server disconnect');
    assert.ok(tabs.every((t) => t.connected));

    // Once a tab closes, another may open (the session ends a moment after the disconnect).
    tabs.pop().disconnect();
    const deadline = Date.now() + 3000;
    let outcome;
    while ((outcome = await attempt(alice.tok)) !== 'connected') {
      assert.equal(outcome, 'TOO_MANY_CONNECTIONS');
      assert.ok(Date.now() < deadline, 'no socket slot freed within 3 s');
    }
  });

  test('typing reaches the other members as typing_status, never the typist or their other tab', async () => {
    const { alice, bob, id, sa, sb } = await pair();
    const sa2 = await mern(alice.tok);
    await joinAll(sa2, [id]);

    // Neither the start nor the stop comes back to either of the typist's tabs.
    const quiet = expectSilence([sa, sa2], 'typing_status');
    const [ack, start] = await act(() => sa.timeout(5000).emitWithAck('typing', { conversationId: id, isTyping: true }), [sb, 'typing_status']);
    assert.deepEqual(ack, { success: true });
    assert.deepEqual(start, { userId: alice.id, username: 'alice', conversationId: id, isTyping: true });

    // As the seed's frontend sends it: no ack.
    const [, stop] = await act(async () => sa.emit('typing', { conversationId: id, isTyping: false }), [sb, 'typing_status']);
    assert.deepEqual(stop, { userId: alice.id, username: 'alice', conversationId: id, isTyping: false });
    await quiet;

    // And the other way round.
    const [, back] = await act(async () => sb.emit('typing', { conversationId: Number(id), isTyping: true }), [sa, 'typing_status']);
    assert.deepEqual(back, { userId: bob.id, username: 'bob', conversationId: id, isTyping: true });
  });

  test('a typing state with no stop ends by itself: typing_status isTyping false', async () => {
    const { alice, id, sa, sb } = await pair();
    const [, start] = await act(async () => sa.emit('typing', { conversationId: id, isTyping: true }), [sb, 'typing_status']);
    assert.equal(start.isTyping, true);
    const expired = await next(sb, 'typing_status', TYPING_TTL_MS + 3000);
    assert.deepEqual(expired, { userId: alice.id, username: 'alice', conversationId: id, isTyping: false });
  });

  test("a non-member's typing is refused with NOT_A_MEMBER and not relayed", async () => {
    const { id, sa, sb } = await pair();
    const eve = await mern(user('eve', 'Eve').tok);
    const quiet = expectSilence([sa, sb, eve], 'typing_status');
    const ack = await eve.timeout(5000).emitWithAck('typing', { conversationId: id, isTyping: true });
    assert.equal(ack.success, false);
    assert.equal(ack.code, 'NOT_A_MEMBER');
    assert.equal(typeof ack.error, 'string');
    eve.emit('typing', { conversationId: id, isTyping: true });
    const err = await next(eve, 'error');
    assert.deepEqual([err.code, err.event], ['NOT_A_MEMBER', 'typing']);
    await quiet;
    assert.equal(eve.connected, true);
  });

  test('malformed typing payloads are refused with INVALID_ARGUMENT', async () => {
    const { id, sa } = await pair();
    for (const payload of [{ conversationId: id }, { isTyping: true }, { conversationId: id, isTyping: 'yes' }, 'typing']) {
      const ack = await sa.timeout(5000).emitWithAck('typing', payload);
      assert.equal(ack.success, false, JSON.stringify(payload));
      assert.equal(ack.code, 'INVALID_ARGUMENT', JSON.stringify(payload));
    }
    sa.emit('typing', { conversationId: id });
    const err = await next(sa, 'error');
    assert.deepEqual([err.code, err.event], ['INVALID_ARGUMENT', 'typing']);
  });

  test('typing starts are throttled per user (30 a minute); stops always pass', async () => {
    const { alice, id, sa, sb } = await pair();
    const sa2 = await mern(alice.tok);
    const noErrors = expectSilence([sa, sa2], 'error');
    // Bob's log counts what got through: Alice starts and stops, again and
    // again, so every start that reaches him is a new typing_status.
    const heard = record(sb, 'typing_status');
    const typing = (s, isTyping) => s.timeout(5000).emitWithAck('typing', { conversationId: id, isTyping });
    let relayed = 0;
    let throttled;
    for (; relayed < 40; relayed++) {
      // The user's starts count together, whichever tab sends them.
      const start = await typing(relayed % 2 ? sa2 : sa, true);
      if (start.throttled) {
        throttled = start;
        break;
      }
      assert.deepEqual(start, { success: true }, `start ${relayed + 1}`);
      assert.equal((await heard.count(2 * relayed + 1)).at(-1).isTyping, true);
      assert.deepEqual(await typing(sa, false), { success: true }, 'stops always pass');
      assert.equal((await heard.count(2 * relayed + 2)).at(-1).isTyping, false);
    }
    assert.deepEqual(throttled, { success: true, throttled: true });
    // 30 a minute: the 31st start within the minute is dropped (a slow run
    // may have earned a start or three back by then).
    assert.ok(relayed >= 30 && relayed <= 33, `${relayed} starts relayed`);
    // The dropped start reached nobody: Bob heard each relayed start and
    // stop, and nothing else.
    await sleep(QUIET_MS);
    assert.equal(heard.seen.length, 2 * relayed, JSON.stringify(heard.seen.slice(2 * relayed)));
    // Stops were never counted: 30 starts and 30 stops all got through.
    assert.deepEqual(heard.seen.at(-1), { userId: alice.id, username: 'alice', conversationId: id, isTyping: false });
    await noErrors;
    heard.stop();
  });
});

describe('the default namespace', () => {
  test('/ speaks mern when it is the configured contract', async () => {
    const { bob, id, sa } = await pair();
    const root = await connect('/', { auth: { token: bob.tok } });
    await joinAll(root, [id]);
    const [m, got] = await act(() => send(sa, id, 'to the root namespace'), [root, 'receive_message']);
    assert.equal(got.message._id, m._id);
    const { errors } = await authFailure({ auth: { token: 'abc.def' } }, '/');
    assert.equal(errors[0].code, 'INVALID_TOKEN');
  });
});

describe('token expiry during a connection', () => {
  test("requests on an expired socket are refused with TOKEN_EXPIRED; refresh_token on the same socket makes them work; another user's token disconnects", async () => {
    const alice = user('alice', 'Alice');
    const bob = user('bob', 'Bob');
    const id = await conversation(alice.tok, [bob.id]);
    // `exp` 3 s ago: accepted at the handshake (5 s leeway), refused 2 s later.
    const expiring = token(alice.id, { name: 'Alice', expiresIn: -3, extra: { username: 'alice' } });
    const sa = await mern(expiring);
    const sb = await mern(bob.tok);
    await joinAll(sa, [id]);
    await joinAll(sb, [id]);
    await sleep(2500);
    const sid = sa.id;

    // With an ack: a failed ack; without one: the `error` event. Nothing is
    // stored or delivered.
    const quiet = expectSilence(sb, ['receive_message', 'typing_status']);
    const ack = await sa.timeout(3000).emitWithAck('send_message', { conversationId: id, content: 'too late', type: 'text' });
    assert.equal(ack.success, false, JSON.stringify(ack));
    assert.equal(ack.code, 'TOKEN_EXPIRED');
    assert.match(ack.error, /^Authentication error/);
    // The token is checked before the payload is read: a payload that
    // cannot be read is refused for the token too.
    const unreadable = await sa.timeout(3000).emitWithAck('send_message', 'not an object');
    assert.equal(unreadable.code, 'TOKEN_EXPIRED', JSON.stringify(unreadable));
    const error = next(sa, 'error');
    sa.emit('typing', { conversationId: id, isTyping: true });
    const e = await error;
    assert.equal(e.code, 'TOKEN_EXPIRED');
    assert.match(e.message, /^Authentication error/);
    await quiet;
    const { body } = await rest('GET', `/api/conversations/${id}/messages`, bob.tok);
    assert.deepEqual(body.messages, []);

    // A fresh token: acked with its expiry, and the same socket sends again.
    const refreshed = await sa.timeout(3000).emitWithAck('refresh_token', { token: alice.tok });
    assert.equal(refreshed.success, true, JSON.stringify(refreshed));
    assert.equal(typeof refreshed.expiresAt, 'string');
    assert.equal(sa.id, sid);
    const got = next(sb, 'receive_message');
    const sent = await sa.timeout(3000).emitWithAck('send_message', { conversationId: id, content: 'in time', type: 'text' });
    assert.equal(sent.success, true, JSON.stringify(sent));
    assert.equal((await got).message.content, 'in time');

    // Another user's token: refused with USER_MISMATCH, then disconnected.
    const gone = next(sa, 'disconnect');
    const mismatch = await sa.timeout(3000).emitWithAck('refresh_token', { token: bob.tok });
    assert.equal(mismatch.success, false, JSON.stringify(mismatch));
    assert.equal(mismatch.code, 'USER_MISMATCH');
    assert.equal(await gone, 'io server disconnect');
  });
});
