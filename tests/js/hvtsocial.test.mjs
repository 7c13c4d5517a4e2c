// The `hvtsocial` contract (seed 000) with the official socket.io-client:
// register_user, send_message → receive_message to both sides (a first
// message creates the direct chat), messages_read → recent_chat_read,
// recall_message → message_recalled, every refusal as an `error` event,
// numeric ids on the wire, the default namespace, and a conversation shared
// with a `raven` user.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, connect, conversation, next, refused, rest, silence, token } from './confab.mjs';

after(closeAll);

const NS = '/hvtsocial';
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
  test('no token: connect_error AUTHENTICATION_REQUIRED; bad and expired tokens', async () => {
    assert.equal((await refused(NS)).message, 'AUTHENTICATION_REQUIRED');
    assert.equal((await refused(NS, { auth: { token: token(nid(), { secret: 'nope' }) } })).message, 'INVALID_TOKEN');
    assert.equal((await refused(NS, { auth: { token: token(nid(), { expiresIn: -3600 }) } })).message, 'TOKEN_EXPIRED');
  });

  test('register_user with the token user is silent; an ack, when passed, says so', async () => {
    const a = await user('Alice');
    a.s.emit('register_user', { userId: a.id });
    await silence(a.s, 'error', 300);
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
    b.s.emit('send_message', { text: 'to carol', receiverId: c.id, type: 'text' });
    await next(c.s, 'receive_message');
    await silence(a.s, 'receive_message', 300);
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
    a.s.emit('send_message', { chatId: id, text: 'team!', receiverId: outsider.id, type: 'text' });
    const got = await Promise.all([a, b, c].map((u) => next(u.s, 'receive_message')));
    for (const m of got) {
      assert.equal(m.chat_id, id);
      assert.equal(m.text, 'team!');
    }
    await silence(outsider.s, 'receive_message', 300);
  });

  test('image and voice messages carry media_url; a string chatId is accepted', async () => {
    const { a, b, chatId } = await firstChat();
    a.s.emit('send_message', { chatId: String(chatId), text: '', receiverId: b.id, type: 'image', mediaUrl: 'https://cdn.example.com/p.jpg' });
    let m = await next(b.s, 'receive_message');
    assert.equal(m.type, 'image');
    assert.equal(m.media_url, 'https://cdn.example.com/p.jpg');
    assert.equal(m.mediaUrl, 'https://cdn.example.com/p.jpg');
    assert.equal(m.text, '');
    b.s.emit('send_message', { chatId, receiverId: a.id, type: 'voice', mediaUrl: 'https://cdn.example.com/v.webm' });
    m = await next(a.s, 'receive_message');
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
    assert.deepEqual(Object.keys(ack).sort(), ['error', 'success']);
    assert.equal(ack.error.code, 'INVALID_ARGUMENT');
  });
});

describe('send_message refusals', () => {
  test('bad payloads: error with a stable code, nothing is written, the socket stays up', async () => {
    const a = await user('Alice');
    const b = await user('Bob');
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
    await silence(b.s, 'receive_message', 200);
    const list = await rest('GET', '/api/conversations', a.tok);
    assert.deepEqual(list.body, []);
    // Exactly 10 KB is fine.
    a.s.emit('send_message', { text: 'x'.repeat(10 * 1024), receiverId: b.id, type: 'text' });
    assert.equal((await next(b.s, 'receive_message')).text.length, 10 * 1024);
  });

  test("a non-member's send to an existing chat is refused (NOT_A_MEMBER), not re-routed", async () => {
    const { a, b, chatId } = await firstChat();
    const eve = await user('Eve');
    eve.s.emit('send_message', { chatId, text: 'let me in', receiverId: a.id, type: 'text' });
    await refusedWith(eve.s, 'send_message', 'NOT_A_MEMBER');
    await silence(a.s, 'receive_message', 300);
    const history = await rest('GET', `/api/conversations/${chatId}/messages`, b.tok);
    assert.equal(history.body.messages.length, 1);
    assert.deepEqual((await rest('GET', '/api/conversations', eve.tok)).body, []);
  });
});

describe('messages_read and recent_chat_read', () => {
  test('reading tells the other side {chatId}; the reader hears nothing; nothing new, no event', async () => {
    const { a, b, chatId } = await firstChat();
    b.s.emit('messages_read', { chatId, userId: b.id });
    const r = await next(a.s, 'recent_chat_read');
    assert.equal(r.chatId, chatId);
    assert.equal(r.userId, b.id);
    await silence(b.s, 'recent_chat_read', 300);
    // Nothing new to read.
    const ack = await b.s.emitWithAck('messages_read', { chatId: String(chatId) });
    assert.deepEqual(ack, { success: true, data: { chatId } });
    await silence(a.s, 'recent_chat_read', 300);
    // Own messages do not count as read by oneself.
    a.s.emit('messages_read', { chatId, userId: a.id });
    await silence(b.s, 'recent_chat_read', 300);
    // A new message, read again.
    a.s.emit('send_message', { chatId, text: 'still there?', receiverId: b.id, type: 'text' });
    await next(b.s, 'receive_message');
    b.s.emit('messages_read', { chatId, userId: b.id });
    assert.equal((await next(a.s, 'recent_chat_read')).chatId, chatId);
  });

  test('refusals: wrong userId, missing chatId, unknown chat, non-member', async () => {
    const { a, b, chatId } = await firstChat();
    b.s.emit('messages_read', { chatId, userId: a.id });
    await refusedWith(b.s, 'messages_read', 'PERMISSION_DENIED');
    b.s.emit('messages_read', { userId: b.id });
    await refusedWith(b.s, 'messages_read', 'INVALID_ARGUMENT');
    b.s.emit('messages_read', { chatId: 999999999 });
    await refusedWith(b.s, 'messages_read', 'CONVERSATION_NOT_FOUND');
    const eve = await user('Eve');
    eve.s.emit('messages_read', { chatId, userId: eve.id });
    await refusedWith(eve.s, 'messages_read', 'NOT_A_MEMBER');
    await silence(a.s, 'recent_chat_read', 300);
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
    await silence(b.s, 'message_recalled', 200);
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
    const m = await next(r, 'new_message');
    assert.equal(m.conversationId, id);
    assert.equal(m.text, 'numbers in, strings out');
    r.emit('send_message', { conversation_id: id, text: 'and back' });
    const back = await next(h.s, 'receive_message');
    assert.equal(back.chat_id, Number(id));
    assert.equal(back.sender_id, Number(ravenSub));
  });
});
