// The `hvtsocial` contract (seed 000) with the official socket.io-client:
// register_user, send_message → receive_message to both sides (a first
// message creates the direct chat), messages_read → recent_chat_read,
// recall_message → message_recalled, every refusal as an `error` event,
// numeric ids on the wire, the default namespace, a conversation shared
// with a `raven` user, and presence: user_online / user_offline for the
// users who share a chat, typing → user_typing, the per-user socket limit,
// and calls: ring, answer, ICE, end, the three timers (missed, maximum
// duration, disconnect grace), busy, the rate limit, mid-call
// renegotiation, non-participants refused; and token expiry during a
// connection (refused, then refresh_token on the same socket).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { QUIET_MS, URL, closeAll, connect, conversation, expectSilence, next, record, refused, rest, sleep, token } from './confab.mjs';

after(closeAll);

const NS = '/hvtsocial';
// A socket without a token is told the one line HVTSocial's frontend lacks.
const TOKEN_REQUIRED = 'AUTHENTICATION_REQUIRED: add auth: { token: localStorage.getItem("token") } to the io() options';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// Numeric user ids (token subjects such as "100123"), unique within the run.
let lastUser = 100000 + Math.floor(Math.random() * 1e9);
const nid = () => String(++lastUser);

/** A connected hvtsocial user: {id (number), sub (string), tok, s (socket)}. */
async function user(name, avatar) {
  const sub = nid();
  const tok = token(sub, { name, extra: avatar ? { avatar } : {} });
  const s = await connect(NS, { auth: { token: tok } });
  return { id: Number(sub), sub, tok, s };
}

/** The next `error` event, checked to be `code` for `event`. */
async function refusedWith(s, event, code) {
  const err = await next(s, 'error');
  assert.equal(err.code, code, JSON.stringify(err));
  assert.equal(err.event, event);
  assert.equal(typeof err.message, 'string');
  return err;
}

/** Alice sends Bob a first message (no chatId); returns both and the chat id. */
async function firstChat(text = 'Hello!') {
  const a = await user('Alice', 'https://cdn.example.com/alice.png');
  const b = await user('Bob');
  a.s.emit('send_message', { text, receiverId: b.id, type: 'text' });
  const [ma, mb] = await Promise.all([next(a.s, 'receive_message'), next(b.s, 'receive_message')]);
  assert.deepEqual(ma, mb);
  return { a, b, chatId: mb.chat_id, message: mb };
}

describe('connection', () => {
  test('no token: connect_error AUTHENTICATION_REQUIRED (with the line to add); bad and expired tokens', async () => {
    assert.equal((await refused(NS)).message, TOKEN_REQUIRED);
    assert.equal((await refused(NS, { auth: { token: token(nid(), { secret: 'nope' }) } })).message, 'INVALID_TOKEN');
    assert.equal((await refused(NS, { auth: { token: token(nid(), { expiresIn: -3600 }) } })).message, 'TOKEN_EXPIRED');
  });

  test('register_user with the token user is silent; an ack, when passed, says so', async () => {
    const a = await user('Alice');
    const quiet = expectSilence(a.s, 'error');
    a.s.emit('register_user', { userId: a.id });
    await quiet;
    const ack = await a.s.emitWithAck('register_user', { userId: a.sub });
    assert.deepEqual(ack, { success: true, data: { userId: a.id } });
  });

  test("register_user with someone else's id: PERMISSION_DENIED, nothing changes", async () => {
    const a = await user('Alice');
    const b = await user('Bob');
    a.s.emit('register_user', { userId: b.id });
    await refusedWith(a.s, 'register_user', 'PERMISSION_DENIED');
    // a's socket did not become b's: b's messages still reach only b's chat partners.
    const c = await user('Carol');
    const quiet = expectSilence(a.s, 'receive_message');
    b.s.emit('send_message', { text: 'to carol', receiverId: c.id, type: 'text' });
    await Promise.all([next(b.s, 'receive_message'), next(c.s, 'receive_message')]);
    await quiet;
    a.s.emit('register_user', {});
    await refusedWith(a.s, 'register_user', 'INVALID_ARGUMENT');
    a.s.emit('register_user');
    await refusedWith(a.s, 'register_user', 'INVALID_ARGUMENT');
    const ack = await a.s.emitWithAck('register_user', { userId: b.id });
    assert.equal(ack.success, false);
    assert.equal(ack.error.code, 'PERMISSION_DENIED');
    assert.equal(a.s.connected, true);
  });

  test('the default namespace / speaks hvtsocial', async () => {
    const [a, b] = [nid(), nid()];
    const sa = await connect('/', { auth: { token: token(a, { name: 'Alice' }) } });
    const sb = await connect(NS, { auth: { token: token(b) } });
    sa.emit('register_user', { userId: Number(a) });
    sa.emit('send_message', { text: 'from /', receiverId: Number(b), type: 'text' });
    const [ma, mb] = await Promise.all([next(sa, 'receive_message'), next(sb, 'receive_message')]);
    assert.deepEqual(ma, mb);
    assert.equal(mb.sender_id, Number(a));
  });
});

describe('send_message and receive_message', () => {
  test('a first message (no chatId) creates the direct chat and reaches both sides in the seed shape', async () => {
    const { a, b, chatId, message: m } = await firstChat('Hello!');
    assert.equal(typeof m.id, 'number');
    assert.equal(typeof chatId, 'number');
    assert.equal(m.sender_id, a.id);
    assert.equal(m.text, 'Hello!');
    assert.equal(m.type, 'text');
    assert.match(m.created_at, ISO);
    assert.deepEqual(m.sender, { id: a.id, full_name: 'Alice', avatar: 'https://cdn.example.com/alice.png' });
    assert.equal(m.media_url, undefined);
    // camelCase aliases as the seed's client payloads spell them
    assert.equal(m.chatId, chatId);
    assert.equal(m.senderId, a.id);
    assert.equal(m.createdAt, m.created_at);
    // The chat is a direct conversation of the two.
    const list = await rest('GET', '/api/conversations', b.tok);
    assert.equal(list.body.length, 1);
    assert.equal(list.body[0].id, String(chatId));
    assert.equal(list.body[0].kind, 'direct');
  });

  test('a reply with chatId goes to the same chat; a second first message finds it too', async () => {
    const { a, b, chatId } = await firstChat();
    b.s.emit('send_message', { chatId, text: 'Hi Alice', receiverId: a.id, type: 'text' });
    let [ma, mb] = await Promise.all([next(a.s, 'receive_message'), next(b.s, 'receive_message')]);
    assert.equal(ma.chat_id, chatId);
    assert.equal(ma.sender.full_name, 'Bob');
    assert.deepEqual(ma, mb);
    // No chatId again, from the other side: the same direct chat.
    b.s.emit('send_message', { text: 'again', receiverId: a.sub, type: 'text' });
    [ma, mb] = await Promise.all([next(a.s, 'receive_message'), next(b.s, 'receive_message')]);
    assert.equal(ma.chat_id, chatId);
    // A chatId that does not exist, with receiverId: the same direct chat.
    a.s.emit('send_message', { chatId: 999999999, text: 'stale id', receiverId: b.id, type: 'text' });
    [ma, mb] = await Promise.all([next(a.s, 'receive_message'), next(b.s, 'receive_message')]);
    assert.equal(mb.chat_id, chatId);
    assert.equal(mb.text, 'stale id');
    a.s.emit('send_message', { chatId: null, text: 'null id', receiverId: String(b.id), type: 'text' });
    assert.equal((await next(b.s, 'receive_message')).chat_id, chatId);
    const history = await rest('GET', `/api/conversations/${chatId}/messages`, a.tok);
    assert.deepEqual(history.body.messages.map((x) => x.text), ['Hello!', 'Hi Alice', 'again', 'stale id', 'null id']);
  });

  test('every socket of both users gets it (the sender\'s other tabs included)', async () => {
    const a = await user('Alice');
    const b = await user('Bob');
    const a2 = await connect(NS, { auth: { token: a.tok } });
    const b2 = await connect(NS, { auth: { token: b.tok } });
    a.s.emit('send_message', { text: 'all tabs', receiverId: b.id, type: 'text' });
    const got = await Promise.all([a.s, a2, b.s, b2].map((s) => next(s, 'receive_message')));
    for (const m of got) assert.equal(m.text, 'all tabs');
  });

  test('a group chat (made over REST): every member gets it, receiverId is ignored', async () => {
    const [a, b, c] = [await user('Alice'), await user('Bob'), await user('Carol')];
    const id = Number(await conversation(a.tok, [b.sub, c.sub], 'team'));
    const outsider = await user('Eve');
    const quiet = expectSilence(outsider.s, 'receive_message');
    a.s.emit('send_message', { chatId: id, text: 'team!', receiverId: outsider.id, type: 'text' });
    const got = await Promise.all([a, b, c].map((u) => next(u.s, 'receive_message')));
    for (const m of got) {
      assert.equal(m.chat_id, id);
      assert.equal(m.text, 'team!');
    }
    await quiet;
  });

  test('image and voice messages carry media_url; a string chatId is accepted', async () => {
    const { a, b, chatId } = await firstChat();
    // Both sides get each message: wait for both before the next one.
    const both = () => Promise.all([next(a.s, 'receive_message'), next(b.s, 'receive_message')]);
    let arriving = both();
    a.s.emit('send_message', { chatId: String(chatId), text: '', receiverId: b.id, type: 'image', mediaUrl: 'https://cdn.example.com/p.jpg' });
    let [, m] = await arriving;
    assert.equal(m.type, 'image');
    assert.equal(m.media_url, 'https://cdn.example.com/p.jpg');
    assert.equal(m.mediaUrl, 'https://cdn.example.com/p.jpg');
    assert.equal(m.text, '');
    arriving = both();
    b.s.emit('send_message', { chatId, receiverId: a.id, type: 'voice', mediaUrl: 'https://cdn.example.com/v.webm' });
    [m] = await arriving;
    assert.equal(m.type, 'voice');
    assert.equal(m.media_url, 'https://cdn.example.com/v.webm');
  });

  test('a message posted over REST reaches hvtsocial sockets', async () => {
    const { a, b, chatId } = await firstChat();
    const seen = next(b.s, 'receive_message');
    const { status, body } = await rest('POST', `/api/conversations/${chatId}/messages`, a.tok, { text: 'via REST' });
    assert.equal(status, 201);
    const m = await seen;
    assert.equal(m.id, Number(body.id));
    assert.equal(m.text, 'via REST');
  });

  test('an ack, when passed, answers the message or the error', async () => {
    const a = await user('Alice');
    const b = await user('Bob');
    let ack = await a.s.emitWithAck('send_message', { text: 'acked', receiverId: b.id, type: 'text' });
    assert.equal(ack.success, true);
    assert.equal(ack.data.text, 'acked');
    assert.equal(typeof ack.data.id, 'number');
    ack = await a.s.emitWithAck('send_message', { text: 'nobody' });
    assert.deepEqual(Object.keys(ack).sort(), ['error', 'ok', 'success']);
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, 'INVALID_ARGUMENT');
  });
});

describe('send_message refusals', () => {
  test('bad payloads: error with a stable code, nothing is written, the socket stays up', async () => {
    const a = await user('Alice');
    const b = await user('Bob');
    const quiet = expectSilence([a.s, b.s], 'receive_message');
    const cases = [
      [{ text: 'to whom?', type: 'text' }, 'INVALID_ARGUMENT'],
      [{ text: 42, receiverId: b.id, type: 'text' }, 'INVALID_ARGUMENT'],
      [{ text: 'x', receiverId: { id: 1 }, type: 'text' }, 'INVALID_ARGUMENT'],
      [{ text: 'x', receiverId: b.id, chatId: [1], type: 'text' }, 'INVALID_ARGUMENT'],
      [{ text: 'x', receiverId: b.id, type: 'sticker' }, 'INVALID_ARGUMENT'],
      [{ text: 'x', receiverId: b.id, type: 'image' }, 'INVALID_ARGUMENT'],
      [{ text: '', receiverId: b.id, type: 'text' }, 'EMPTY_MESSAGE'],
      [{ text: '   ', receiverId: b.id }, 'EMPTY_MESSAGE'],
      [{ text: 'x'.repeat(10 * 1024 + 1), receiverId: b.id, type: 'text' }, 'MESSAGE_TOO_LONG'],
      [{ text: 'me, myself', receiverId: a.id, type: 'text' }, 'INVALID_ARGUMENT'],
      [{ chatId: 999999999, text: 'nowhere', type: 'text' }, 'CONVERSATION_NOT_FOUND'],
      [{ chatId: 'abc', text: 'nowhere', type: 'text' }, 'INVALID_ARGUMENT'],
    ];
    for (const [payload, code] of cases) {
      a.s.emit('send_message', payload);
      await refusedWith(a.s, 'send_message', code);
    }
    a.s.emit('send_message', 'not an object');
    await refusedWith(a.s, 'send_message', 'INVALID_ARGUMENT');
    assert.equal(a.s.connected, true);
    await quiet;
    const list = await rest('GET', '/api/conversations', a.tok);
    assert.deepEqual(list.body, []);
    // Exactly 10 KB is fine.
    a.s.emit('send_message', { text: 'x'.repeat(10 * 1024), receiverId: b.id, type: 'text' });
    assert.equal((await next(b.s, 'receive_message')).text.length, 10 * 1024);
  });

  test("a non-member's send to an existing chat is refused (NOT_A_MEMBER), not re-routed", async () => {
    const { a, b, chatId } = await firstChat();
    const eve = await user('Eve');
    const quiet = expectSilence([a.s, b.s, eve.s], 'receive_message');
    eve.s.emit('send_message', { chatId, text: 'let me in', receiverId: a.id, type: 'text' });
    await refusedWith(eve.s, 'send_message', 'NOT_A_MEMBER');
    await quiet;
    const history = await rest('GET', `/api/conversations/${chatId}/messages`, b.tok);
    assert.equal(history.body.messages.length, 1);
    assert.deepEqual((await rest('GET', '/api/conversations', eve.tok)).body, []);
  });
});

describe('messages_read and recent_chat_read', () => {
  test('reading tells the other side {chatId}; the reader hears nothing; nothing new, no event', async () => {
    const { a, b, chatId } = await firstChat();
    const readerQuiet = expectSilence(b.s, 'recent_chat_read');
    b.s.emit('messages_read', { chatId, userId: b.id });
    const r = await next(a.s, 'recent_chat_read');
    assert.equal(r.chatId, chatId);
    assert.equal(r.userId, b.id);
    await readerQuiet;
    // Nothing new to read.
    const nothingNew = expectSilence([a.s, b.s], 'recent_chat_read');
    const ack = await b.s.emitWithAck('messages_read', { chatId: String(chatId) });
    assert.deepEqual(ack, { success: true, data: { chatId } });
    await nothingNew;
    // Own messages do not count as read by oneself.
    const ownQuiet = expectSilence([a.s, b.s], 'recent_chat_read');
    a.s.emit('messages_read', { chatId, userId: a.id });
    await ownQuiet;
    // A new message, read again.
    a.s.emit('send_message', { chatId, text: 'still there?', receiverId: b.id, type: 'text' });
    await next(b.s, 'receive_message');
    b.s.emit('messages_read', { chatId, userId: b.id });
    assert.equal((await next(a.s, 'recent_chat_read')).chatId, chatId);
  });

  test('refusals: wrong userId, missing chatId, unknown chat, non-member', async () => {
    const { a, b, chatId } = await firstChat();
    const quiet = expectSilence(a.s, 'recent_chat_read');
    b.s.emit('messages_read', { chatId, userId: a.id });
    await refusedWith(b.s, 'messages_read', 'PERMISSION_DENIED');
    b.s.emit('messages_read', { userId: b.id });
    await refusedWith(b.s, 'messages_read', 'INVALID_ARGUMENT');
    b.s.emit('messages_read', { chatId: 999999999 });
    await refusedWith(b.s, 'messages_read', 'CONVERSATION_NOT_FOUND');
    const eve = await user('Eve');
    eve.s.emit('messages_read', { chatId, userId: eve.id });
    await refusedWith(eve.s, 'messages_read', 'NOT_A_MEMBER');
    await quiet;
  });
});

describe('recall_message and message_recalled', () => {
  test('the author recalls: both sides get {messageId, chatId} as numbers', async () => {
    const { a, b, chatId, message } = await firstChat('oops');
    a.s.emit('recall_message', { messageId: message.id, chatId });
    const [ra, rb] = await Promise.all([next(a.s, 'message_recalled'), next(b.s, 'message_recalled')]);
    assert.deepEqual(ra, { messageId: message.id, chatId });
    assert.deepEqual(rb, ra);
    const history = await rest('GET', `/api/conversations/${chatId}/messages`, b.tok);
    assert.equal(history.body.messages[0].recalled, true);
    assert.equal(history.body.messages[0].text, '');
  });

  test('refusals: not the author, twice, unknown, wrong chat, missing messageId', async () => {
    const { a, b, chatId, message } = await firstChat('mine');
    const quiet = expectSilence([a.s, b.s], 'message_recalled');
    b.s.emit('recall_message', { messageId: message.id, chatId });
    await refusedWith(b.s, 'recall_message', 'NOT_AUTHOR');
    const other = await firstChat('elsewhere');
    a.s.emit('recall_message', { messageId: message.id, chatId: other.chatId });
    await refusedWith(a.s, 'recall_message', 'MESSAGE_NOT_FOUND');
    a.s.emit('recall_message', { messageId: 999999999, chatId });
    await refusedWith(a.s, 'recall_message', 'MESSAGE_NOT_FOUND');
    a.s.emit('recall_message', { chatId });
    await refusedWith(a.s, 'recall_message', 'INVALID_ARGUMENT');
    const eve = await user('Eve');
    eve.s.emit('recall_message', { messageId: message.id });
    await refusedWith(eve.s, 'recall_message', 'NOT_A_MEMBER');
    await quiet;
    // The real recall, then a second one.
    const seen = next(b.s, 'message_recalled');
    const ack = await a.s.emitWithAck('recall_message', { messageId: String(message.id) });
    assert.deepEqual(ack, { success: true, data: { messageId: message.id, chatId } });
    assert.deepEqual(await seen, { messageId: message.id, chatId });
    a.s.emit('recall_message', { messageId: message.id, chatId });
    await refusedWith(a.s, 'recall_message', 'MESSAGE_GONE');
    assert.equal(a.s.connected, true);
  });
});

describe('across contracts', () => {
  test('an hvtsocial user and a raven user talk in one chat, each in their own shape', async () => {
    const h = await user('Hana');
    const ravenSub = nid();
    const r = await connect('/raven', { auth: { token: token(ravenSub, { name: 'Rex' }) } });
    // The hvtsocial user starts the direct chat with a first message.
    h.s.emit('send_message', { text: 'hi from hvtsocial', receiverId: Number(ravenSub), type: 'text' });
    const first = await next(h.s, 'receive_message');
    const chatId = first.chat_id;
    const join = await r.emitWithAck('join_conversation', { conversation_id: String(chatId) });
    assert.equal(join.success, true, JSON.stringify(join));
    // raven → hvtsocial
    r.emit('send_message', { conversation_id: String(chatId), text: 'hi from raven' });
    const [inRaven, inHvt] = await Promise.all([next(r, 'new_message'), next(h.s, 'receive_message')]);
    assert.equal(inRaven.conversationId, String(chatId));
    assert.equal(inRaven.senderId, ravenSub);
    assert.equal(inHvt.text, 'hi from raven');
    assert.equal(inHvt.chat_id, chatId);
    assert.equal(inHvt.id, Number(inRaven.id));
    assert.equal(inHvt.sender_id, Number(ravenSub));
    assert.deepEqual(inHvt.sender, { id: Number(ravenSub), full_name: 'Rex', avatar: '' });
    // hvtsocial → raven
    h.s.emit('send_message', { chatId, text: 'back to raven', receiverId: Number(ravenSub), type: 'text' });
    const m = await next(r, 'new_message');
    assert.equal(m.text, 'back to raven');
    assert.equal(m.senderId, h.sub);
    assert.equal(m.senderName, 'Hana');
    assert.equal(typeof m.id, 'string');
    // Reading the raven user's message: the raven user's hvtsocial-side
    // receipt has no raven event, so only the reader's own ack says it worked.
    const read = await h.s.emitWithAck('messages_read', { chatId, userId: h.id });
    assert.deepEqual(read, { success: true, data: { chatId } });
    // Recalling one's own first message reaches the hvtsocial side.
    h.s.emit('recall_message', { messageId: first.id, chatId });
    assert.deepEqual(await next(h.s, 'message_recalled'), { messageId: first.id, chatId });
  });

  test('a group made over REST with a raven member', async () => {
    const h = await user('Hana');
    const ravenSub = nid();
    const rtok = token(ravenSub, { name: 'Rex' });
    const id = await conversation(rtok, [h.sub], 'mixed');
    const r = await connect('/raven', { auth: { token: rtok } });
    await r.emitWithAck('join_conversation', { conversation_id: id });
    h.s.emit('send_message', { chatId: Number(id), text: 'numbers in, strings out', type: 'text' });
    // Hana's own copy too, so it is not mistaken for the reply below.
    const [m] = await Promise.all([next(r, 'new_message'), next(h.s, 'receive_message')]);
    assert.equal(m.conversationId, id);
    assert.equal(m.text, 'numbers in, strings out');
    r.emit('send_message', { conversation_id: id, text: 'and back' });
    const back = await next(h.s, 'receive_message');
    assert.equal(back.chat_id, Number(id));
    assert.equal(back.sender_id, Number(ravenSub));
  });
});

describe('presence and typing', () => {
  /** A user who has not connected yet: {id (number), sub, tok}. */
  function account(name) {
    const sub = nid();
    return { id: Number(sub), sub, tok: token(sub, { name }) };
  }
  const open = (acc) => connect(NS, { auth: { token: acc.tok } });

  /** Alice and Bob share a direct chat (made over REST, before either connects). */
  async function chatOfTwo() {
    const [a, b] = [account('Alice'), account('Bob')];
    const chatId = Number(await conversation(a.tok, [b.sub]));
    return { a, b, chatId };
  }

  const near = (iso, from, to) => {
    assert.match(iso, ISO);
    const t = Date.parse(iso);
    assert.ok(t >= from - 1000 && t <= to + 1000, `${iso} not within the test's time`);
  };

  test('user_online reaches a peer on the first socket; a second tab and closing one of two change nothing; user_offline with lastSeen on the last', async () => {
    const { a, b } = await chatOfTwo();
    const stranger = await open(account('Eve'));
    const sb = await open(b);
    const t0 = Date.now();
    const online = next(sb, 'user_online');
    // Only the users who share a chat hear any of it.
    const aloof = expectSilence(stranger, ['user_online', 'user_offline']);
    const a1 = await open(a);
    const seen = await online;
    assert.equal(seen.userId, a.id);
    near(seen.lastSeen, t0, Date.now());
    // A second tab: still online, no new event.
    const noSecond = expectSilence(sb, 'user_online');
    const a2 = await open(a);
    await noSecond;
    // One of two tabs closes: still online.
    const stillOnline = expectSilence(sb, 'user_offline');
    a1.disconnect();
    await stillOnline;
    // The last one closes: offline, last seen now.
    const t1 = Date.now();
    const offline = next(sb, 'user_offline');
    a2.disconnect();
    const gone = await offline;
    assert.equal(gone.userId, a.id);
    near(gone.lastSeen, t1, Date.now());
    await aloof;
  });

  test('the 11th socket of one user is refused with TOO_MANY_CONNECTIONS', async () => {
    const a = account('Alice');
    const sockets = [];
    for (let i = 0; i < 10; i++) sockets.push(await open(a));
    const err = await refused(NS, { auth: { token: a.tok } });
    assert.equal(err.message, 'TOO_MANY_CONNECTIONS');
    // The ten still work; once one closes there is room again.
    assert.ok(sockets.every((s) => s.connected));
    sockets.pop().disconnect();
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        sockets.push(await open(a));
        break;
      } catch (e) {
        if (e.message !== 'TOO_MANY_CONNECTIONS' || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const s of sockets) s.disconnect();
  });

  test('typing reaches the other member as user_typing, never any tab of the typist; stopping too', async () => {
    const { a, b, chatId } = await chatOfTwo();
    const [a1, a2, sb] = [await open(a), await open(a), await open(b)];
    const start = next(sb, 'user_typing');
    // Neither the typist's start nor their stop comes back to any of their tabs.
    const mine = expectSilence([a1, a2], 'user_typing');
    a1.emit('typing', { chatId, userId: a.id, isTyping: true });
    assert.deepEqual(await start, { chatId, userId: a.id, isTyping: true, userName: 'Alice' });
    const stop = next(sb, 'user_typing');
    a1.emit('typing', { chatId, userId: a.id, isTyping: false });
    assert.deepEqual(await stop, { chatId, userId: a.id, isTyping: false, userName: 'Alice' });
    await mine;
    // The other way round, with string ids and an ack.
    const bobMute = expectSilence(sb, 'user_typing');
    const back = Promise.all([next(a1, 'user_typing'), next(a2, 'user_typing')]);
    const ack = await sb.emitWithAck('typing', { chatId: String(chatId), userId: b.sub, isTyping: true });
    assert.deepEqual(ack, { success: true, data: { chatId, isTyping: true, relayed: true } });
    for (const seen of await back) assert.deepEqual(seen, { chatId, userId: b.id, isTyping: true, userName: 'Bob' });
    const stopped = next(a1, 'user_typing');
    sb.emit('typing', { chatId, isTyping: false });
    assert.equal((await stopped).isTyping, false);
    await bobMute;
  });

  test('a typing start nobody stops ends by itself (isTyping: false)', async () => {
    const { a, b, chatId } = await chatOfTwo();
    const [sa, sb] = [await open(a), await open(b)];
    // Neither the start nor its expiry reaches the typist.
    const mine = expectSilence(sa, 'user_typing');
    sa.emit('typing', { chatId, userId: a.id, isTyping: true });
    assert.equal((await next(sb, 'user_typing')).isTyping, true);
    const ended = await next(sb, 'user_typing', 8000);
    assert.deepEqual(ended, { chatId, userId: a.id, isTyping: false, userName: 'Alice' });
    await mine;
  });

  test("a non-member's typing is refused with NOT_A_MEMBER and not relayed; typing as someone else is PERMISSION_DENIED", async () => {
    const { a, b, chatId } = await chatOfTwo();
    // Each socket emits only after another has connected since (its event
    // handlers are attached once the connect handler has run).
    const eve = account('Eve');
    const se = await open(eve);
    const [sa, sb] = [await open(a), await open(b)];
    const quiet = expectSilence([sa, sb, se], 'user_typing');
    se.emit('typing', { chatId, userId: eve.id, isTyping: true });
    await refusedWith(se, 'typing', 'NOT_A_MEMBER');
    se.emit('typing', { chatId: 999999999, isTyping: true });
    const missing = await next(se, 'error');
    assert.equal(missing.event, 'typing');
    assert.ok(['NOT_A_MEMBER', 'CONVERSATION_NOT_FOUND'].includes(missing.code), missing.code);
    sa.emit('typing', { chatId, userId: b.id, isTyping: true });
    await refusedWith(sa, 'typing', 'PERMISSION_DENIED');
    sa.emit('typing', { isTyping: true });
    await refusedWith(sa, 'typing', 'INVALID_ARGUMENT');
    await quiet;
    assert.equal(se.connected && sa.connected, true);
  });

  test('typing starts over 30 a minute are dropped silently (stops always pass)', async () => {
    const { a, b, chatId } = await chatOfTwo();
    const [sa, sb] = [await open(a), await open(b)];
    const noErrors = expectSilence(sa, 'error');
    // Bob's log counts what got through: Alice starts and stops, again and
    // again, so every start that reaches him is a new user_typing.
    const heard = record(sb, 'user_typing');
    let relayed = 0;
    for (; relayed < 40; relayed++) {
      const start = await sa.emitWithAck('typing', { chatId, isTyping: true });
      assert.equal(start.success, true);
      if (!start.data.relayed) break;
      assert.equal((await heard.count(2 * relayed + 1)).at(-1).isTyping, true);
      const stop = await sa.emitWithAck('typing', { chatId, isTyping: false });
      assert.equal(stop.data.relayed, true, 'stops always pass');
      assert.equal((await heard.count(2 * relayed + 2)).at(-1).isTyping, false);
    }
    // 30 a minute: the 31st start within the minute is dropped (a slow run
    // may have earned a start or three back by then).
    assert.ok(relayed >= 30 && relayed <= 33, `${relayed} starts relayed`);
    // The dropped start reached nobody: Bob heard each start and stop that
    // was relayed, and nothing else.
    await sleep(QUIET_MS);
    assert.equal(heard.seen.length, 2 * relayed, JSON.stringify(heard.seen.slice(2 * relayed)));
    // A stop still passes while starts are throttled.
    const stop = await sa.emitWithAck('typing', { chatId, isTyping: false });
    assert.deepEqual(stop, { success: true, data: { chatId, isTyping: false, relayed: true } });
    await noErrors;
    heard.stop();
  });

  test("a raven user's connect and disconnect are user_online / user_offline for an hvtsocial peer", async () => {
    const h = account('Hana');
    const rSub = nid();
    const rtok = token(rSub, { name: 'Rex' });
    await conversation(rtok, [h.sub], 'mixed');
    const sh = await open(h);
    const online = next(sh, 'user_online');
    const r = await connect('/raven', { auth: { token: rtok } });
    assert.equal((await online).userId, Number(rSub));
    const offline = next(sh, 'user_offline');
    r.disconnect();
    const gone = await offline;
    assert.equal(gone.userId, Number(rSub));
    assert.match(gone.lastSeen, ISO);
  });
});

// HVTSocial's published frontend (Frontend/src/socket.js,
// Frontend/src/page/Chatbox.jsx), replayed as it really talks: payloads as
// Chatbox builds them, ids as Number(...), acks read as `response.ok`.
describe('real client: HVTSocial', () => {
  /** Chatbox's socket options, plus the one line the app must add. */
  const chatbox = (u) => connect(NS, { transports: ['websocket'], reconnectionDelay: 1000, reconnectionAttempts: 3, auth: { token: u.tok } });

  /** Alice and Bob in a direct chat (made over REST), each on a Chatbox socket that joined it. */
  async function chatbox2() {
    const [a, b] = [await user('Alice'), await user('Bob')];
    const chatId = Number(await conversation(a.tok, [b.sub]));
    for (const u of [a, b]) {
      u.c = await chatbox(u);
      u.c.emit('register_user', u.id);
      const ack = await u.c.emitWithAck('join_chat', Number(chatId));
      assert.deepEqual(ack, { success: true, data: { chatId } });
    }
    return { a, b, chatId };
  }

  test("the app's own sockets send no credential: refused, and told the line to add", async () => {
    // socket.js
    const raw = io(URL + NS, { autoConnect: false, withCredentials: true, transports: ['polling', 'websocket'], reconnection: false, forceNew: true });
    const refusal = new Promise((resolve, reject) => {
      raw.once('connect', () => reject(new Error('connected without a token')));
      raw.once('connect_error', resolve);
    });
    raw.connect();
    assert.equal((await refusal).message, TOKEN_REQUIRED);
    raw.close();
    // Chatbox.jsx
    const err = await refused(NS, { transports: ['websocket'], reconnectionDelay: 1000, reconnectionAttempts: 3 });
    assert.equal(err.message, TOKEN_REQUIRED);
    // With the line added, the same options connect.
    const u = await user('Alice');
    const s = await connect(NS, { withCredentials: true, transports: ['polling', 'websocket'], auth: { token: u.tok } });
    assert.equal(s.connected, true);
  });

  test('register_user as a bare number: silent for the token user, PERMISSION_DENIED for anyone else', async () => {
    const [a, b] = [await user('Alice'), await user('Bob')];
    const quiet = expectSilence(a.s, 'error');
    a.s.emit('register_user', Number(a.sub));
    await quiet;
    assert.deepEqual(await a.s.emitWithAck('register_user', Number(a.sub)), { success: true, data: { userId: a.id } });
    a.s.emit('register_user', b.id);
    await refusedWith(a.s, 'register_user', 'PERMISSION_DENIED');
    a.s.emit('register_user', { id: a.id });
    await refusedWith(a.s, 'register_user', 'INVALID_ARGUMENT');
  });

  test('join_chat / leave_chat with Number(chatId): a member joins, anyone else gets an error', async () => {
    const { a, chatId } = await chatbox2();
    const eve = await user('Eve');
    eve.s.emit('join_chat', chatId);
    const err = await refusedWith(eve.s, 'join_chat', 'NOT_A_MEMBER');
    assert.match(err.message, /not a member/);
    eve.s.emit('join_chat', 999999999);
    await refusedWith(eve.s, 'join_chat', 'CONVERSATION_NOT_FOUND');
    eve.s.emit('join_chat', 'abc');
    await refusedWith(eve.s, 'join_chat', 'INVALID_ARGUMENT');
    eve.s.emit('join_chat');
    await refusedWith(eve.s, 'join_chat', 'INVALID_ARGUMENT');
    // The seed's object form too.
    assert.deepEqual(await a.s.emitWithAck('join_chat', { chatId }), { success: true, data: { chatId } });
    // leave_chat is silent.
    const quiet = expectSilence(a.c, 'error');
    a.c.emit('leave_chat', Number(chatId));
    await quiet;
    assert.deepEqual(await a.c.emitWithAck('leave_chat', Number(chatId)), { success: true, data: { chatId } });
    assert.equal(eve.s.connected, true);
  });

  test('send_message {chatId, senderId, content, message_type}: ack {ok, success, message, data}, receive_message with content and message_type', async () => {
    const { a, b, chatId } = await chatbox2();
    const seen = [next(a.c, 'receive_message'), next(b.c, 'receive_message')];
    const response = await a.c.emitWithAck('send_message', { chatId: Number(chatId), senderId: a.id, content: 'xin chào', message_type: 'text' });
    assert.equal(response.ok, true);
    assert.equal(response.success, true);
    assert.deepEqual(response.message, response.data);
    const [ma, mb] = await Promise.all(seen);
    assert.deepEqual(ma, mb);
    assert.deepEqual(response.message, mb);
    assert.equal(mb.chat_id, chatId);
    assert.equal(mb.sender_id, a.id);
    assert.equal(mb.content, 'xin chào');
    assert.equal(mb.message_type, 'text');
    // The seed's spelling is there too.
    assert.equal(mb.text, 'xin chào');
    assert.equal(mb.type, 'text');
  });

  test('image and voice as Chatbox sends them (media_url, duration, created_at)', async () => {
    const { a, b, chatId } = await chatbox2();
    let seen = next(b.c, 'receive_message');
    // The sender gets its own message too: wait for it, so it is not taken
    // for the reply below.
    const echo = next(a.c, 'receive_message');
    a.c.emit('send_message', {
      chatId: Number(chatId),
      senderId: a.id,
      content: '',
      message_type: 'image',
      media_url: 'https://cdn.example.com/p.jpg',
      created_at: new Date().toISOString(),
    });
    let m = await seen;
    assert.deepEqual([m.message_type, m.media_url, m.content], ['image', 'https://cdn.example.com/p.jpg', '']);
    await echo;
    seen = next(a.c, 'receive_message');
    b.c.emit('send_message', {
      chatId: Number(chatId),
      senderId: b.id,
      message_type: 'voice',
      media_url: 'https://cdn.example.com/v.webm',
      duration: 3,
      created_at: new Date().toISOString(),
    });
    m = await seen;
    assert.deepEqual([m.message_type, m.media_url, m.sender_id], ['voice', 'https://cdn.example.com/v.webm', b.id]);
  });

  test('a reply names the message replied to', async () => {
    const { a, b, chatId } = await chatbox2();
    let seen = next(b.c, 'receive_message');
    const echo = next(a.c, 'receive_message'); // the sender's own copy
    a.c.emit('send_message', { chatId: Number(chatId), senderId: a.id, content: 'first', message_type: 'text' });
    const first = await seen;
    await echo;
    seen = next(a.c, 'receive_message');
    const response = await b.c.emitWithAck('send_message', {
      chatId: Number(chatId),
      senderId: b.id,
      content: 'answer',
      message_type: 'text',
      reply_to_id: first.id,
      reply_content: first.content,
      reply_type: first.message_type,
      reply_sender: 'Alice',
    });
    assert.equal(response.ok, true);
    const m = await seen;
    assert.equal(m.content, 'answer');
    assert.deepEqual([m.reply_to_id, m.reply_content, m.reply_type, m.reply_sender], [first.id, 'first', 'text', 'Alice']);
  });

  test("a senderId that is not the token's user is refused (ok: false) and nobody hears anything", async () => {
    const { a, b, chatId } = await chatbox2();
    const quiet = expectSilence([a.c, b.c, a.s, b.s], 'receive_message');
    const response = await a.c.emitWithAck('send_message', { chatId: Number(chatId), senderId: b.id, content: 'as bob', message_type: 'text' });
    assert.equal(response.ok, false);
    assert.equal(response.success, false);
    assert.equal(response.error.code, 'PERMISSION_DENIED');
    const empty = await a.c.emitWithAck('send_message', { chatId: Number(chatId), senderId: a.id, content: '   ', message_type: 'text' });
    assert.deepEqual([empty.ok, empty.error.code], [false, 'EMPTY_MESSAGE']);
    await quiet;
    const history = await rest('GET', `/api/conversations/${chatId}/messages`, a.tok);
    assert.equal(history.body.messages.length, 0);
  });

  test('mark_messages_read {chatId, userId}: the other side gets messages_read {chatId, readBy} and recent_chat_read; the reader hears no receipt', async () => {
    const { a, b, chatId } = await chatbox2();
    const got = next(b.c, 'receive_message');
    a.c.emit('send_message', { chatId: Number(chatId), senderId: a.id, content: 'read me', message_type: 'text' });
    await got;
    const reader = expectSilence([b.c, b.s], ['messages_read', 'recent_chat_read']);
    const [receipt, recent] = [next(a.c, 'messages_read'), next(a.s, 'recent_chat_read')];
    b.c.emit('mark_messages_read', { chatId: Number(chatId), userId: b.id });
    assert.deepEqual(await receipt, { chatId, readBy: b.id });
    assert.equal((await recent).chatId, chatId);
    await reader;
    // Nothing new to read: no receipt at all.
    const again = expectSilence([a.c, a.s], ['messages_read', 'recent_chat_read']);
    b.c.emit('mark_messages_read', { chatId: Number(chatId), userId: b.id });
    await again;
  });

  test("mark_messages_read as someone else: PERMISSION_DENIED, nothing is marked", async () => {
    const { a, b, chatId } = await chatbox2();
    const got = next(b.c, 'receive_message');
    a.c.emit('send_message', { chatId: Number(chatId), senderId: a.id, content: 'unread', message_type: 'text' });
    await got;
    const quiet = expectSilence([a.c, a.s], ['messages_read', 'recent_chat_read']);
    b.c.emit('mark_messages_read', { chatId: Number(chatId), userId: a.id });
    await refusedWith(b.c, 'mark_messages_read', 'PERMISSION_DENIED');
    await quiet;
    // b can still read it as b: the message was not marked.
    const receipt = next(a.c, 'messages_read');
    b.c.emit('mark_messages_read', { chatId: Number(chatId), userId: b.id });
    assert.deepEqual(await receipt, { chatId, readBy: b.id });
  });

  test('user_status_changed {userId, status} beside user_online / user_offline, to the users who share a chat', async () => {
    const [asub, bsub] = [nid(), nid()];
    const [atok, btok] = [token(asub, { name: 'Alice' }), token(bsub, { name: 'Bob' })];
    await conversation(atok, [bsub]);
    const b = await chatbox({ tok: btok });
    const stranger = await chatbox({ tok: token(nid()) });
    const aloof = expectSilence(stranger, 'user_status_changed');
    const online = next(b, 'user_status_changed');
    const a = await chatbox({ tok: atok });
    assert.deepEqual(await online, { userId: Number(asub), status: 'online' });
    const offline = next(b, 'user_status_changed');
    a.disconnect();
    assert.deepEqual(await offline, { userId: Number(asub), status: 'offline' });
    await aloof;
  });
});

describe('calls', () => {
  const RING_MS = Number(process.env.CONFAB_CALL_RING_TIMEOUT_MS ?? 60000);
  const MAX_MS = Number(process.env.CONFAB_CALL_MAX_DURATION_MS ?? 10800000);
  const GRACE_MS = Number(process.env.CONFAB_CALL_DISCONNECT_GRACE_MS ?? 15000);
  const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\n' };
  const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\n' };
  const ICE = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };

  /** Alice calls Bob (who share a chat) and Bob answers on `b.s`. */
  async function inCall() {
    const { a, b, chatId } = await firstChat('call me');
    const ring = next(b.s, 'incoming_call');
    a.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: false, callerName: 'Alice', callerAvatar: '', chatId });
    const { callId } = await ring;
    const answered = next(a.s, 'call_answered');
    b.s.emit('answer_call', { to: a.id, answer: ANSWER });
    await answered;
    return { a, b, chatId, callId };
  }

  test('call_user rings every tab, answer_call stops the others, ICE both ways, end_call and the record', async () => {
    const { a, b, chatId } = await firstChat('call me');
    const b2 = await connect(NS, { auth: { token: b.tok } });
    const rings = [next(b.s, 'incoming_call'), next(b2, 'incoming_call')];
    a.s.emit('call_user', {
      to: b.id, offer: OFFER, isVideo: true, callerName: 'Not Alice', callerAvatar: 'https://evil.example.com/x.png', chatId,
    });
    const [ring, ring2] = await Promise.all(rings);
    assert.deepEqual(ring, ring2);
    assert.equal(typeof ring.callId, 'number');
    // Name and avatar come from the token, never the payload.
    assert.deepEqual(ring, {
      from: a.id, offer: OFFER, isVideo: true, callerName: 'Alice', callerAvatar: 'https://cdn.example.com/alice.png', chatId, callId: ring.callId,
    });

    const answered = next(a.s, 'call_answered');
    const stopped = next(b2, 'call_ended');
    const answeringQuiet = expectSilence(b.s, 'call_ended');
    b.s.emit('answer_call', { to: a.id, answer: ANSWER });
    assert.deepEqual(await answered, { from: b.id, answer: ANSWER, callId: ring.callId });
    assert.deepEqual(await stopped, { from: b.id, callId: ring.callId, reason: 'answered_elsewhere' });
    await answeringQuiet;
    // The other tab may not answer any more.
    b2.emit('answer_call', { to: a.id, answer: ANSWER });
    await refusedWith(b2, 'answer_call', 'CONFLICT');

    // ICE passes through untouched, each way; only the answering tab hears it.
    const otherTabQuiet = expectSilence(b2, 'ice_candidate');
    const iceB = next(b.s, 'ice_candidate');
    a.s.emit('ice_candidate', { to: b.id, candidate: ICE });
    assert.deepEqual(await iceB, { from: a.id, candidate: ICE, callId: ring.callId });
    const iceA = next(a.s, 'ice_candidate');
    b.s.emit('ice_candidate', { to: a.id, candidate: ICE });
    assert.deepEqual(await iceA, { from: b.id, candidate: ICE, callId: ring.callId });
    await otherTabQuiet;

    await sleep(1100);
    const ended = next(a.s, 'call_ended');
    const endCall = next(a.s, 'end_call');
    b.s.emit('end_call', { to: a.id });
    assert.deepEqual(await ended, { from: b.id, callId: ring.callId, reason: 'user_ended' });
    assert.deepEqual(await endCall, { from: b.id, callId: ring.callId });

    const records = await rest('GET', `/api/calls?conversation=${chatId}`, a.tok);
    assert.equal(records.status, 200);
    assert.equal(records.body.calls.length, 1);
    const r = records.body.calls[0];
    assert.equal(r.id, String(ring.callId));
    assert.equal(r.state, 'ended');
    assert.equal(r.endReason, 'user_ended');
    assert.equal(r.media, 'video');
    assert.ok(r.durationMs >= 1000, JSON.stringify(r));
    assert.deepEqual(r.participants.map((p) => p.userId).sort(), [a.sub, b.sub].sort());
  });

  test('end_call while ringing: the caller cancels, the callee rejects; both sides hear call_ended and end_call, and the records say so', async () => {
    const { a, b, chatId } = await firstChat('call me');
    const b2 = await connect(NS, { auth: { token: b.tok } });
    for (const [who, peer, reason, state] of [[a, b, 'cancelled', 'cancelled'], [b, a, 'rejected', 'rejected']]) {
      const rings = [next(b.s, 'incoming_call'), next(b2, 'incoming_call')];
      a.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: false });
      const [{ callId }] = await Promise.all(rings);
      // Both sides, every tab of the callee (so the other tab stops ringing).
      const ends = [a.s, b.s, b2].flatMap((s) => [next(s, 'call_ended'), next(s, 'end_call')]);
      const ack = await who.s.emitWithAck('end_call', { to: peer.id });
      assert.deepEqual(ack, { success: true, data: { callId } });
      const got = await Promise.all(ends);
      for (let i = 0; i < got.length; i += 2) {
        assert.deepEqual(got[i], { from: who.id, callId, reason });
        assert.deepEqual(got[i + 1], { from: who.id, callId });
      }
      const records = await rest('GET', `/api/calls?conversation=${chatId}&limit=1`, b.tok);
      assert.deepEqual([records.body.calls[0].id, records.body.calls[0].state], [String(callId), state]);
      // Nothing left to end.
      const err = refusedWith(who.s, 'end_call', 'NOT_FOUND');
      const late = await who.s.emitWithAck('end_call', { to: peer.id });
      assert.equal(late.error.code, 'NOT_FOUND');
      await err;
    }
  });

  test('unanswered: after the ring timeout both sides hear call_ended {from: "system", reason: "missed"}; a late answer is refused', async () => {
    const { a, b, chatId } = await firstChat('call me');
    const ends = [a.s, b.s].flatMap((s) => [next(s, 'call_ended', RING_MS + 3000), next(s, 'end_call', RING_MS + 3000)]);
    const ring = next(b.s, 'incoming_call');
    const started = Date.now();
    a.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: true });
    const { callId } = await ring;
    const [endedA, endCallA, endedB, endCallB] = await Promise.all(ends);
    assert.ok(Date.now() - started >= RING_MS - 100, 'not before the ring timeout');
    for (const e of [endedA, endedB]) assert.deepEqual(e, { from: 'system', callId, reason: 'missed' });
    for (const e of [endCallA, endCallB]) assert.deepEqual(e, { from: 'system', callId });
    b.s.emit('answer_call', { to: a.id, answer: ANSWER, callId });
    await refusedWith(b.s, 'answer_call', 'CONFLICT');
    b.s.emit('answer_call', { to: a.id, answer: ANSWER });
    await refusedWith(b.s, 'answer_call', 'NOT_FOUND');
    const records = await rest('GET', `/api/calls?conversation=${chatId}`, a.tok);
    assert.deepEqual([records.body.calls[0].state, records.body.calls[0].endReason], ['missed', 'missed']);
  });

  test('an answered call ends at its maximum duration: call_ended from "system", reason timeout, to both', async () => {
    const { a, b, chatId } = await firstChat('call me');
    const ends = [a.s, b.s].map((s) => next(s, 'call_ended', MAX_MS + 5000));
    const ring = next(b.s, 'incoming_call');
    a.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: false });
    const { callId } = await ring;
    const answered = next(a.s, 'call_answered');
    b.s.emit('answer_call', { to: a.id, answer: ANSWER });
    await answered;
    const since = Date.now();
    for (const e of await Promise.all(ends)) assert.deepEqual(e, { from: 'system', callId, reason: 'timeout' });
    assert.ok(Date.now() - since >= MAX_MS - 300, 'not before the maximum duration');
    const r = (await rest('GET', `/api/calls?conversation=${chatId}`, a.tok)).body.calls[0];
    assert.equal(r.endReason, 'timeout');
    assert.ok(Math.abs(r.durationMs - MAX_MS) <= 1000, JSON.stringify(r));
  });

  test('a participant who drops and stays away past the grace ends the call: participant_disconnected', async () => {
    const { a, b, callId } = await inCall();
    const ended = next(a.s, 'call_ended', GRACE_MS + 3000);
    const endCall = next(a.s, 'end_call', GRACE_MS + 3000);
    const dropped = Date.now();
    b.s.disconnect();
    assert.deepEqual(await ended, { from: 'system', callId, reason: 'participant_disconnected' });
    assert.deepEqual(await endCall, { from: 'system', callId });
    assert.ok(Date.now() - dropped >= GRACE_MS - 100, 'not before the grace');
    // Alice is free again: she can call Bob (now back) anew.
    const back = await connect(NS, { auth: { token: b.tok } });
    const ring = next(back, 'incoming_call');
    a.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: false });
    assert.notEqual((await ring).callId, callId);
    a.s.emit('end_call', { to: b.id });
  });

  test('a participant who comes back within the grace stays in the call; signaling follows the new socket', async () => {
    const { a, b, callId } = await inCall();
    const quiet = expectSilence(a.s, ['call_ended', 'end_call'], { ms: GRACE_MS + 500 });
    b.s.disconnect();
    await sleep(GRACE_MS / 3);
    const back = await connect(NS, { auth: { token: b.tok } });
    await quiet;
    const ice = next(back, 'ice_candidate');
    a.s.emit('ice_candidate', { to: b.id, candidate: ICE });
    assert.deepEqual(await ice, { from: a.id, candidate: ICE, callId });
    const iceA = next(a.s, 'ice_candidate');
    back.emit('ice_candidate', { to: a.id, candidate: ICE });
    assert.deepEqual(await iceA, { from: b.id, candidate: ICE, callId });
    const ended = next(a.s, 'call_ended');
    back.emit('end_call', { to: a.id });
    assert.deepEqual(await ended, { from: b.id, callId, reason: 'user_ended' });
  });

  test('mid-call renegotiation: a second call_user / answer_call between the two is an offer / answer in the same call, on the sockets in it', async () => {
    const { a, b, chatId, callId } = await inCall();
    const b2 = await connect(NS, { auth: { token: b.tok } });
    const VIDEO_OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611 3 IN IP4 127.0.0.1\r\nm=video 9\r\n' };
    const VIDEO_ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 7 3 IN IP4 127.0.0.1\r\nm=video 9\r\n' };
    // Nobody hangs up or rings anew, and Bob's other tab hears none of it.
    const quiet = expectSilence([a.s, b.s, b2], ['call_ended', 'end_call']);
    const otherTab = expectSilence(b2, ['incoming_call', 'call_answered']);

    // Bob turns his video on.
    const offered = next(a.s, 'incoming_call');
    const ack = await b.s.emitWithAck('call_user', { to: a.id, offer: VIDEO_OFFER, isVideo: true, callerName: 'Bob', callerAvatar: '', chatId });
    assert.deepEqual(ack, { success: true, data: { callId } });
    assert.deepEqual(await offered, { from: b.id, offer: VIDEO_OFFER, callId });
    const answered = next(b.s, 'call_answered');
    const ackA = await a.s.emitWithAck('answer_call', { to: b.id, answer: VIDEO_ANSWER });
    assert.deepEqual(ackA, { success: true, data: { callId } });
    assert.deepEqual(await answered, { from: a.id, answer: VIDEO_ANSWER, callId });

    // And Alice renegotiates the other way.
    const offeredB = next(b.s, 'incoming_call');
    a.s.emit('call_user', { to: b.id, offer: VIDEO_OFFER, isVideo: true });
    assert.deepEqual(await offeredB, { from: a.id, offer: VIDEO_OFFER, callId });
    const answeredA = next(a.s, 'call_answered');
    b.s.emit('answer_call', { to: a.id, answer: VIDEO_ANSWER, callId });
    assert.deepEqual(await answeredA, { from: b.id, answer: VIDEO_ANSWER, callId });

    // Bob's other tab is not in the call: its answer_call is still refused.
    b2.emit('answer_call', { to: a.id, answer: VIDEO_ANSWER });
    await refusedWith(b2, 'answer_call', 'CONFLICT');
    await quiet;
    await otherTab;

    // Still the one call, ongoing; hanging up ends it.
    const ended = next(b.s, 'call_ended');
    a.s.emit('end_call', { to: b.id });
    assert.deepEqual(await ended, { from: a.id, callId, reason: 'user_ended' });
    const calls = (await rest('GET', `/api/calls?conversation=${chatId}`, a.tok)).body.calls;
    assert.deepEqual(calls.map((c) => [c.id, c.state]), [[String(callId), 'ended']]);
  });

  test('refusals: busy callee, no shared chat, the rate limit', async () => {
    const { b } = await inCall();
    // Carol shares a chat with Bob, who is in a call.
    const c = await user('Carol');
    c.s.emit('send_message', { text: 'hi', receiverId: b.id, type: 'text' });
    await next(c.s, 'receive_message');
    const quiet = expectSilence(b.s, 'incoming_call');
    c.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: false });
    await refusedWith(c.s, 'call_user', 'USER_BUSY');
    await quiet;
    // Dave shares nothing with Carol.
    const d = await user('Dave');
    const quietC = expectSilence(c.s, 'incoming_call');
    d.s.emit('call_user', { to: c.id, offer: OFFER, isVideo: false });
    await refusedWith(d.s, 'call_user', 'PERMISSION_DENIED');
    await quietC;
    // Five call starts a minute, then RATE_LIMITED with retryAfter.
    d.s.emit('send_message', { text: 'hi', receiverId: c.id, type: 'text' });
    await next(d.s, 'receive_message');
    for (let i = 0; i < 5; i++) {
      const ack = await d.s.emitWithAck('call_user', { to: c.id, offer: OFFER, isVideo: false });
      assert.equal(ack.success, true, JSON.stringify(ack));
      assert.equal((await d.s.emitWithAck('end_call', { to: c.id })).success, true);
    }
    const err = next(d.s, 'error');
    const ack = await d.s.emitWithAck('call_user', { to: c.id, offer: OFFER, isVideo: false });
    assert.equal(ack.success, false);
    assert.equal(ack.error.code, 'RATE_LIMITED');
    const e = await err;
    assert.equal(e.code, 'RATE_LIMITED');
    assert.equal(e.event, 'call_user');
    assert.ok(e.retryAfter >= 1 && e.retryAfter <= 60, JSON.stringify(e));
  });

  test("a non-participant's ICE candidate, answer and offer are refused and forwarded to nobody", async () => {
    const { a, b, callId } = await inCall();
    const eve = await user('Eve');
    eve.s.emit('send_message', { text: 'hi', receiverId: b.id, type: 'text' });
    await next(eve.s, 'receive_message');
    const quiet = expectSilence([a.s, b.s], ['ice_candidate', 'incoming_call', 'call_answered']);
    eve.s.emit('ice_candidate', { to: b.id, candidate: ICE });
    await refusedWith(eve.s, 'ice_candidate', 'NOT_FOUND');
    eve.s.emit('ice_candidate', { to: b.id, candidate: ICE, callId });
    await refusedWith(eve.s, 'ice_candidate', 'PERMISSION_DENIED');
    eve.s.emit('answer_call', { to: a.id, answer: ANSWER, callId });
    await refusedWith(eve.s, 'answer_call', 'PERMISSION_DENIED');
    eve.s.emit('answer_call', { to: b.id, answer: ANSWER });
    await refusedWith(eve.s, 'answer_call', 'NOT_FOUND');
    // An offer from Eve is no renegotiation of their call: Bob is busy.
    eve.s.emit('call_user', { to: b.id, offer: OFFER, isVideo: true });
    await refusedWith(eve.s, 'call_user', 'USER_BUSY');
    eve.s.emit('ice_candidate', { to: b.id });
    await refusedWith(eve.s, 'ice_candidate', 'INVALID_ARGUMENT');
    await quiet;
    const ended = next(b.s, 'call_ended');
    a.s.emit('end_call', { to: b.id });
    assert.equal((await ended).callId, callId);
  });
});

describe('token expiry during a connection', () => {
  test("requests on an expired socket get error TOKEN_EXPIRED (and a failed ack), nothing stored or delivered; refresh_token on the same socket makes them work; another user's token disconnects", async () => {
    const alice = nid();
    const b = await user('Bob');
    const chat = Number(await conversation(token(alice, { name: 'Alice' }), [b.sub]));
    // `exp` 3 s ago: accepted at the handshake (5 s leeway), refused 2 s later.
    const sa = await connect(NS, { auth: { token: token(alice, { name: 'Alice', expiresIn: -3 }) } });
    await sleep(2500);
    const sid = sa.id;
    const expired = { code: 'TOKEN_EXPIRED', message: 'the token has expired' };

    // With an ack: the ack fails and `error` says why; without one, `error`.
    const quiet = expectSilence(b.s, ['receive_message', 'user_typing']);
    let error = next(sa, 'error');
    const ack = await sa.timeout(3000).emitWithAck('send_message', { chatId: chat, text: 'too late', type: 'text' });
    assert.deepEqual(ack, { success: false, error: expired });
    assert.deepEqual(await error, expired);
    error = next(sa, 'error');
    sa.emit('send_message', { chatId: chat, text: 'too late, no ack', type: 'text' });
    assert.deepEqual(await error, expired);
    error = next(sa, 'error');
    sa.emit('typing', { chatId: chat, isTyping: true });
    assert.deepEqual(await error, expired);
    await quiet;
    const { body } = await rest('GET', `/api/conversations/${chat}/messages`, b.tok);
    assert.deepEqual(body.messages, []);

    // A token that does not verify refreshes nothing: the socket stays refused.
    error = next(sa, 'error');
    const bad = await sa.timeout(3000).emitWithAck('refresh_token', { token: 'abc.def' });
    assert.equal(bad.success, false, JSON.stringify(bad));
    assert.equal(bad.error.code, 'INVALID_TOKEN');
    assert.equal((await error).code, 'INVALID_TOKEN');
    error = next(sa, 'error');
    sa.emit('send_message', { chatId: chat, text: 'still too late', type: 'text' });
    assert.deepEqual(await error, expired);

    // A fresh token (here the token alone, as the contract also accepts):
    // acked with its expiry, and the same socket sends again.
    const refreshed = await sa.timeout(3000).emitWithAck('refresh_token', token(alice, { name: 'Alice' }));
    assert.equal(refreshed.success, true, JSON.stringify(refreshed));
    assert.match(refreshed.data.expiresAt, ISO);
    assert.equal(sa.id, sid);
    assert.equal(sa.connected, true);
    const got = next(b.s, 'receive_message');
    const sent = await sa.timeout(3000).emitWithAck('send_message', { chatId: chat, text: 'in time', type: 'text' });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const m = await got;
    assert.equal(m.text, 'in time');
    assert.equal(m.sender_id, Number(alice));

    // Another user's token: USER_MISMATCH, then disconnected.
    const mismatch = next(sa, 'error');
    const gone = next(sa, 'disconnect');
    const refusal = await sa.timeout(3000).emitWithAck('refresh_token', { token: b.tok });
    assert.equal(refusal.success, false, JSON.stringify(refusal));
    assert.equal(refusal.error.code, 'USER_MISMATCH');
    assert.equal((await mismatch).code, 'USER_MISMATCH');
    assert.equal(await gone, 'io server disconnect');
  });
});
