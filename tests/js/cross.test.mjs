// Users on different contracts in one conversation: one user on each of the
// five contracts joins the same group, each one's message reaches the four
// others in their own contract's shape, and changes (edit, delete, recall)
// made in one contract show up in the others that have an event for them.
// The message rate limit (10 a second per user) refuses the 11th message of
// two tabs in each contract's own shape, and of a user switching contracts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  QUIET_MS,
  closeAll,
  connect,
  conversation,
  expectSilence,
  next,
  nextWhere,
  record,
  rest,
  sleep,
  token,
} from './confab.mjs';

after(closeAll);

/** A numeric user id (hvtsocial and dreamstudio render ids as numbers). */
let v3Sends = 0;
const numericId = () => String(100000 + Math.floor(Math.random() * 1e9));

/**
 * How each contract joins, sends and reads an incoming message, and whether
 * the sending socket gets its own message as that event too (`echo`).
 */
const contracts = {
  raven: {
    open: (u) => connect('/raven', { auth: { token: u.token } }),
    join: (s, id) => s.emitWithAck('join_conversation', { conversation_id: id }),
    send: (s, id, text) => s.emit('send_message', { conversation_id: id, text }),
    incoming: 'new_message',
    echo: true,
    read: (m) => ({ text: m.text, sender: m.senderId, id: m.id, conversation: m.conversationId }),
  },
  mern: {
    open: (u) => connect('/mern', { auth: { token: u.token } }),
    join: (s, id) => s.emitWithAck('join_conversations', [id]),
    send: (s, id, text) => s.emitWithAck('send_message', { conversationId: id, content: text, type: 'text' }),
    incoming: 'receive_message',
    // The sending socket gets the ack, not the event.
    echo: false,
    read: (m) => ({ text: m.message.content, sender: m.message.sender._id, id: m.message._id, conversation: m.conversationId }),
  },
  v3: {
    open: (u) => connect('/v3', { auth: { token: u.token, profileid: u.id } }),
    join: async (s, id) => {
      const joined = next(s, 'chat_joined');
      s.emit('join_chat', { chatid: id });
      return joined;
    },
    send: (s, id, text) => s.emit('send_message', { chatid: id, clientMessageId: `x-${Date.now()}-${++v3Sends}`, messageType: 'text', content: text }),
    incoming: 'new_message',
    echo: true,
    read: (m) => ({ text: m.message.content, sender: m.message.senderid, id: m.message.messageid, conversation: m.message.chatid }),
  },
  hvtsocial: {
    open: (u) => connect('/hvtsocial', { auth: { token: u.token } }),
    join: async () => {},
    send: (s, id, text) => s.emit('send_message', { chatId: Number(id), text }),
    incoming: 'receive_message',
    echo: true,
    read: (m) => {
      assert.equal(typeof m.sender.id, 'number');
      return { text: m.text, sender: String(m.sender.id), id: String(m.id), conversation: String(m.chat_id) };
    },
  },
  dreamstudio: {
    open: (u) => connect('/dreamstudio', { auth: { token: u.token, userId: Number(u.id) } }),
    join: (s, id) => s.emitWithAck('join_room', { roomId: Number(id) }),
    send: (s, id, text) => s.emit('message:send', { roomId: Number(id), content: text }),
    incoming: 'message:new',
    echo: true,
    read: (m) => {
      assert.equal(typeof m.senderId, 'number');
      return { text: m.content, sender: String(m.senderId), id: String(m.id), conversation: String(m.roomId) };
    },
  },
};

/** One user per contract, all in one group conversation, all joined. */
async function everyone() {
  const users = {};
  for (const name of Object.keys(contracts)) {
    const id = numericId();
    users[name] = { id, token: token(id, { name: `${name} user` }) };
  }
  const ids = Object.values(users).map((u) => u.id);
  const chat = await conversation(users.raven.token, ids.slice(1), 'all five');
  for (const [name, c] of Object.entries(contracts)) {
    users[name].s = await c.open(users[name]);
    await c.join(users[name].s, chat);
  }
  return { users, chat };
}

describe('five contracts, one conversation', () => {
  test("each user's message reaches every other contract in its own shape", async () => {
    const { users, chat } = await everyone();
    const names = Object.keys(contracts);
    // Every copy each user gets, from the start: each message must reach each
    // of the others exactly once.
    const logs = Object.fromEntries(names.map((n) => [n, record(users[n].s, contracts[n].incoming)]));
    const sent = [];
    for (const [from, c] of Object.entries(contracts)) {
      const text = `hello from ${from}`;
      const others = names.filter((n) => n !== from);
      const arriving = others.map((n) =>
        nextWhere(users[n].s, contracts[n].incoming, (m) => contracts[n].read(m).text === text),
      );
      await c.send(users[from].s, chat, text);
      const got = await Promise.all(arriving);
      const ids = new Set();
      got.forEach((m, i) => {
        const seen = contracts[others[i]].read(m);
        const what = `${from} → ${others[i]}`;
        assert.equal(seen.sender, users[from].id, what);
        assert.equal(seen.conversation, chat, what);
        assert.match(seen.id, /^\d+$/, what);
        ids.add(seen.id);
      });
      assert.equal(ids.size, 1, `one message, one id everywhere: ${[...ids]}`);
      sent.push({ id: [...ids][0], text, sender: users[from].id });
    }
    // The ids everyone saw are the stored messages, with their texts and senders.
    const { status, body } = await rest('GET', `/api/conversations/${chat}/messages?limit=100`, users.raven.token);
    assert.equal(status, 200);
    const stored = body.messages.map((m) => ({ id: m.id, text: m.text, sender: m.senderId }));
    const byId = (a, b) => Number(a.id) - Number(b.id);
    assert.deepEqual(stored.sort(byId), sent.sort(byId));
    // Each socket got each message once (its own only where the contract echoes).
    await sleep(QUIET_MS);
    for (const n of names) {
      const texts = logs[n].seen.map((m) => contracts[n].read(m).text).sort();
      const expected = names.filter((f) => f !== n || contracts[n].echo).map((f) => `hello from ${f}`).sort();
      assert.deepEqual(texts, expected, n);
      logs[n].stop();
    }
  });

  test('a v3 user and a dreamstudio user: messages, and a dreamstudio edit and delete seen by mern', async () => {
    const { users, chat } = await everyone();
    const { v3, dreamstudio, mern } = users;

    const toDream = nextWhere(dreamstudio.s, 'message:new', (x) => x.content === 'v3 to dreamstudio');
    contracts.v3.send(v3.s, chat, 'v3 to dreamstudio');
    const m = await toDream;
    assert.equal(m.content, 'v3 to dreamstudio');
    assert.equal(m.roomId, Number(chat));
    assert.equal(String(m.senderId), v3.id);

    const toV3 = nextWhere(v3.s, 'new_message', (x) => x.message.content === 'dreamstudio to v3');
    contracts.dreamstudio.send(dreamstudio.s, chat, 'dreamstudio to v3');
    const n = await toV3;
    assert.equal(n.message.content, 'dreamstudio to v3');
    assert.equal(n.message.senderid, dreamstudio.id);
    assert.equal(n.chat.chatName, 'all five');
    const messageId = n.message.messageid;

    const edited = next(mern.s, 'message_edited');
    dreamstudio.s.emit('message:edit', { messageId: Number(messageId), content: 'edited in dreamstudio' });
    const e = await edited;
    assert.equal(e.messageId, messageId);
    assert.equal(e.newContent, 'edited in dreamstudio');

    const mernSees = next(mern.s, 'message_deleted');
    const dreamSees = next(dreamstudio.s, 'message:deleted');
    dreamstudio.s.emit('message:delete', { messageId: Number(messageId) });
    assert.equal((await mernSees).messageId, messageId);
    assert.equal((await dreamSees).messageId, Number(messageId));
  });

  test('an hvtsocial recall reaches mern and dreamstudio as a deletion', async () => {
    const { users, chat } = await everyone();
    const { hvtsocial, mern, dreamstudio } = users;
    const mine = next(hvtsocial.s, 'receive_message');
    contracts.hvtsocial.send(hvtsocial.s, chat, 'oops');
    const sent = await mine;
    const toMern = next(mern.s, 'message_deleted');
    const toDream = next(dreamstudio.s, 'message:deleted');
    hvtsocial.s.emit('recall_message', { messageId: sent.id, chatId: Number(chat) });
    assert.equal((await toMern).messageId, String(sent.id));
    assert.equal((await toDream).messageId, sent.id);
  });
});

describe('a call across contracts', () => {
  const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\n' };
  const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\n' };
  const ICE = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };

  test('a v3 caller and an hvtsocial callee: ring, answer, offer/answer/ICE both ways, controls, end, the record', async () => {
    const [vSub, hSub] = [numericId(), numericId()];
    const [vTok, hTok] = [token(vSub, { name: 'Vic' }), token(hSub, { name: 'Hana' })];
    const chatid = await conversation(vTok, [hSub], 'Call');
    const sv = await connect('/v3', { auth: { token: vTok, profileid: vSub } });
    const sh = await connect('/hvtsocial', { auth: { token: hTok } });

    // v3 rings; hvtsocial hears incoming_call (no offer yet: v3 sends it on its own).
    const ring = next(sh, 'incoming_call');
    const ack = await sv.emitWithAck('initiate_call', { targetId: hSub, callType: 'video', chatid });
    assert.equal(ack.success, true, JSON.stringify(ack));
    const callId = Number(ack.callId);
    assert.deepEqual(await ring, {
      from: Number(vSub), offer: null, isVideo: true, callerName: 'Vic', callerAvatar: '', chatId: Number(chatid), callId,
    });
    // v3's offer while hvtsocial still rings: the full ring, now with the offer.
    const offer = next(sh, 'incoming_call');
    sv.emit('webrtc_offer', { callId: ack.callId, targetId: hSub, offer: OFFER });
    assert.deepEqual(await offer, {
      from: Number(vSub), offer: OFFER, isVideo: true, callerName: 'Vic', callerAvatar: '', chatId: Number(chatid), callId,
    });

    // hvtsocial answers with its SDP: v3 hears call_answered and the answer.
    const answered = next(sv, 'call_answered');
    const answer = next(sv, 'webrtc_answer_received');
    sh.emit('answer_call', { to: Number(vSub), answer: ANSWER });
    assert.equal((await answered).answeredBy, hSub);
    assert.deepEqual(await answer, { callId: ack.callId, fromId: hSub, answer: ANSWER });

    // ICE both ways, untouched.
    const iceH = next(sh, 'ice_candidate');
    sv.emit('webrtc_ice_candidate', { callId: ack.callId, targetId: hSub, candidate: ICE });
    assert.deepEqual(await iceH, { from: Number(vSub), candidate: ICE, callId });
    const iceV = next(sv, 'webrtc_ice_candidate_received');
    sh.emit('ice_candidate', { to: Number(vSub), candidate: ICE });
    assert.deepEqual(await iceV, { callId: ack.callId, fromId: hSub, candidate: ICE });
    // A renegotiation offer from v3 reaches hvtsocial; hvtsocial's own ICE keeps flowing.
    const again = next(sh, 'incoming_call');
    sv.emit('webrtc_offer', { callId: ack.callId, targetId: hSub, offer: OFFER });
    assert.deepEqual(await again, { from: Number(vSub), offer: OFFER, callId });

    // Controls: v3's participant events (hvtsocial's seed has none).
    const muted = next(sv, 'participant_muted');
    sv.emit('toggle_mute', { callId: ack.callId, muted: true });
    assert.equal((await muted).muted, true);

    await sleep(1100);
    const endedV = next(sv, 'call_ended');
    const endedH = next(sh, 'call_ended');
    sh.emit('end_call', { to: Number(vSub) });
    const ev = await endedV;
    assert.deepEqual({ ...ev, duration: undefined, timestamp: undefined }, {
      callId: ack.callId, endedBy: hSub, reason: 'user_ended', duration: undefined, timestamp: undefined,
    });
    assert.ok(ev.duration >= 1, JSON.stringify(ev));
    assert.deepEqual(await endedH, { from: Number(hSub), callId, reason: 'user_ended' });

    const records = await rest('GET', `/api/calls?conversation=${chatid}`, hTok);
    assert.equal(records.status, 200);
    assert.equal(records.body.calls.length, 1);
    assert.equal(records.body.calls[0].id, ack.callId);
    assert.equal(records.body.calls[0].state, 'ended');
    assert.ok(records.body.calls[0].durationMs >= 1000);
  });
  test("a v3 caller's offer reaches an hvtsocial callee still ringing as the full ring, on every tab; once answered, as a renegotiation to the tab in the call", async () => {
    const [vSub, hSub] = [numericId(), numericId()];
    const vTok = token(vSub, { name: 'Vic', extra: { avatar: 'https://cdn.example/vic.png' } });
    const hTok = token(hSub, { name: 'Hana' });
    const chatid = await conversation(vTok, [hSub], 'Voice');
    const sv = await connect('/v3', { auth: { token: vTok, profileid: vSub } });
    const [h1, h2] = [await connect('/hvtsocial', { auth: { token: hTok } }), await connect('/hvtsocial', { auth: { token: hTok } })];

    const rings = [next(h1, 'incoming_call'), next(h2, 'incoming_call')];
    const ack = await sv.emitWithAck('initiate_call', { targetId: hSub, callType: 'voice', chatid });
    assert.equal(ack.success, true, JSON.stringify(ack));
    const callId = Number(ack.callId);
    const ring = { from: Number(vSub), isVideo: false, callerName: 'Vic', callerAvatar: 'https://cdn.example/vic.png', chatId: Number(chatid), callId };
    for (const r of await Promise.all(rings)) assert.deepEqual(r, { ...ring, offer: null });

    // The hvtsocial frontend takes every incoming_call for the ring: the
    // offer comes as the ring again, with it, on both tabs.
    const offers = [next(h1, 'incoming_call'), next(h2, 'incoming_call')];
    sv.emit('webrtc_offer', { callId: ack.callId, targetId: hSub, offer: OFFER });
    for (const o of await Promise.all(offers)) assert.deepEqual(o, { ...ring, offer: OFFER });

    // Tab 1 answers; v3's next offer renegotiates the ongoing call, to tab 1 alone.
    const answered = next(sv, 'call_answered');
    h1.emit('answer_call', { to: Number(vSub), answer: ANSWER });
    await answered;
    const quiet = expectSilence(h2, 'incoming_call');
    const renegotiation = next(h1, 'incoming_call');
    sv.emit('webrtc_offer', { callId: ack.callId, targetId: hSub, offer: OFFER });
    assert.deepEqual(await renegotiation, { from: Number(vSub), offer: OFFER, callId });
    await quiet;
    const ended = next(h1, 'call_ended');
    assert.equal((await sv.emitWithAck('end_call', { callId: ack.callId })).success, true);
    await ended;
  });

  test('an hvtsocial caller and a v3 callee: the offer rides with the ring, the v3 answer arrives as call_answered once', async () => {
    const [hSub, vSub] = [numericId(), numericId()];
    const [hTok, vTok] = [token(hSub, { name: 'Hana' }), token(vSub, { name: 'Vic' })];
    await conversation(hTok, [vSub]);
    const sh = await connect('/hvtsocial', { auth: { token: hTok } });
    const sv = await connect('/v3', { auth: { token: vTok, profileid: vSub } });

    const ring = next(sv, 'incoming_call');
    const offer = next(sv, 'webrtc_offer_received');
    const ack = await sh.emitWithAck('call_user', { to: Number(vSub), offer: OFFER, isVideo: false });
    assert.equal(ack.success, true, JSON.stringify(ack));
    const callId = String(ack.data.callId);
    const incoming = await ring;
    assert.equal(incoming.callId, callId);
    assert.equal(incoming.callerId, hSub);
    assert.equal(incoming.callType, 'voice');
    assert.deepEqual(await offer, { callId, fromId: hSub, offer: OFFER });

    // v3 answers without SDP, then sends its answer: hvtsocial hears one call_answered, with it.
    const answers = record(sh, 'call_answered');
    assert.equal((await sv.emitWithAck('answer_call', { callId })).success, true);
    const answered = next(sh, 'call_answered');
    sv.emit('webrtc_answer', { callId, targetId: hSub, answer: ANSWER });
    assert.deepEqual(await answered, { from: Number(vSub), answer: ANSWER, callId: Number(callId) });
    await sleep(QUIET_MS);
    assert.equal(answers.seen.length, 1, JSON.stringify(answers.seen));

    const endedH = next(sh, 'call_ended');
    assert.equal((await sv.emitWithAck('end_call', { callId })).success, true);
    assert.deepEqual(await endedH, { from: Number(vSub), callId: Number(callId), reason: 'user_ended' });
  });
});

// The message rate limit: 10 messages per user in any one second, counted
// by chat-service over every socket and contract of the user.
describe('message rate limit', () => {
  const LIMIT = 10;
  const WINDOW_MS = 1000;

  /**
   * How each contract shows a send over the limit: `refusal(s)` listens
   * (before the sends) on one tab and resolves with the refusal, checked
   * in the contract's own shape.
   */
  const refusals = {
    raven: (s) =>
      next(s, 'error', 5000).then((e) => {
        assert.deepEqual(Object.keys(e).sort(), ['code', 'details', 'message', 'retryAfter']);
        assert.equal(e.code, 'SEND_MESSAGE_FAILED');
        assert.match(e.details, /^LIMIT_EXCEEDED: at most 10 messages a second/);
        assert.equal(e.retryAfter, 1);
      }),
    mern: null, // in the ack: see `ackRefusal`
    v3: (s) =>
      next(s, 'rate_limited', 5000).then((e) => {
        assert.deepEqual(Object.keys(e).sort(), ['error', 'message', 'retryAfter']);
        assert.equal(e.error, 'rate_limited');
        assert.match(e.message, /at most 10 messages a second/);
        assert.equal(e.retryAfter, 1);
      }),
    hvtsocial: (s) =>
      next(s, 'error', 5000).then((e) => {
        assert.deepEqual(Object.keys(e).sort(), ['code', 'event', 'message', 'retryAfter']);
        assert.equal(e.code, 'LIMIT_EXCEEDED');
        assert.equal(e.event, 'send_message');
        assert.match(e.message, /at most 10 messages a second/);
        assert.equal(e.retryAfter, 1);
      }),
    dreamstudio: (s) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no error within 5000 ms')), 5000);
        s.once('error', (text, detail) => {
          clearTimeout(timer);
          try {
            assert.equal(text, 'Too many messages, try again later');
            assert.deepEqual(Object.keys(detail).sort(), ['code', 'message', 'retryAfter']);
            assert.equal(detail.code, 'LIMIT_EXCEEDED');
            assert.equal(detail.retryAfter, 1);
            resolve();
          } catch (err) {
            reject(err);
          }
        });
      }),
  };

  /** Sends with an ack where the contract answers refusals in it. */
  const ackRefusal = {
    mern: (reply) => {
      if (reply.success) return false;
      assert.deepEqual(reply, { success: false, code: 'LIMIT_EXCEEDED', error: reply.error, retryAfter: 1 });
      assert.match(reply.error, /at most 10 messages a second/);
      return true;
    },
  };

  /** A sender with two tabs in `name` and a raven listener in one chat. */
  async function setup(name) {
    const sender = { id: numericId() };
    sender.token = token(sender.id, { name: 'Sender' });
    const listener = { id: numericId() };
    listener.token = token(listener.id, { name: 'Listener' });
    const chat = await conversation(listener.token, [sender.id], `rate ${name}`);
    const tabs = [];
    for (let i = 0; i < 2; i++) {
      tabs.push(await contracts[name].open(sender));
      await contracts[name].join(tabs[i], chat);
    }
    const ls = await contracts.raven.open(listener);
    await contracts.raven.join(ls, chat);
    return { sender, listener, chat, tabs, ls };
  }

  async function stored(chat, who) {
    const { status, body } = await rest('GET', `/api/conversations/${chat}/messages?limit=100`, who.token);
    assert.equal(status, 200);
    return body.messages.length;
  }

  for (const name of Object.keys(contracts)) {
    test(`${name}: 11 messages in one second from two tabs → 10 stored and delivered, one refused, then sending works again`, async () => {
      const { listener, chat, tabs, ls } = await setup(name);
      const c = contracts[name];
      const heard = record(ls, 'new_message');
      // A refusal on either tab (listening on both before the sends).
      const refused = [];
      if (refusals[name]) {
        const watch = tabs.map((s) => refusals[name](s).then(() => refused.push(s)));
        watch.forEach((p) => p.catch(() => {}));
      }
      const acks = [];
      for (let i = 0; i < LIMIT + 1; i++) acks.push(c.send(tabs[i % 2], chat, `burst ${i}`));
      const replies = await Promise.all(acks);
      await heard.count(LIMIT, 5000);
      if (ackRefusal[name]) {
        assert.equal(replies.filter(ackRefusal[name]).length, 1, JSON.stringify(replies));
      } else {
        for (let i = 0; i < 50 && refused.length < 1; i++) await sleep(100);
        assert.equal(refused.length, 1, 'exactly one refusal');
      }
      // Nothing more is delivered, and only ten are stored.
      await sleep(QUIET_MS);
      assert.equal(heard.seen.length, LIMIT);
      assert.equal(await stored(chat, listener), LIMIT);
      // After the window, the user sends again.
      await sleep(WINDOW_MS);
      const again = nextWhere(ls, 'new_message', (m) => m.text === 'after the window');
      const reply = await c.send(tabs[0], chat, 'after the window');
      if (ackRefusal[name]) assert.equal(ackRefusal[name](reply), false, JSON.stringify(reply));
      await again;
      assert.equal(await stored(chat, listener), LIMIT + 1);
      heard.stop();
    });
  }

  test('switching contracts does not bypass it: 6 from a v3 tab and 6 from a raven tab → 10 stored, 2 refused', async () => {
    const sender = { id: numericId() };
    sender.token = token(sender.id, { name: 'Sender' });
    const listener = { id: numericId() };
    listener.token = token(listener.id, { name: 'Listener' });
    const chat = await conversation(listener.token, [sender.id], 'rate across contracts');
    const v3 = await contracts.v3.open(sender);
    await contracts.v3.join(v3, chat);
    const raven = await contracts.raven.open(sender);
    await contracts.raven.join(raven, chat);
    const ls = await contracts.raven.open(listener);
    await contracts.raven.join(ls, chat);
    const heard = record(ls, 'new_message');
    const limited = [record(v3, 'rate_limited'), record(raven, 'error')];
    const acks = [];
    for (let i = 0; i < 6; i++) {
      acks.push(
        v3.emitWithAck('send_message', { chatid: chat, clientMessageId: `rate-${i}`, messageType: 'text', content: `v3 ${i}` }),
      );
      raven.emit('send_message', { conversation_id: chat, text: `raven ${i}` });
    }
    await heard.count(LIMIT, 5000);
    const replies = await Promise.all(acks);
    const v3Refused = replies.filter((r) => !r.success);
    for (const r of v3Refused) {
      assert.equal(r.code, 'RATE_LIMITED');
      assert.equal(r.retryAfter, 1);
      assert.match(r.clientMessageId, /^rate-\d$/);
    }
    await sleep(QUIET_MS);
    assert.equal(heard.seen.length, LIMIT);
    assert.equal(limited[0].seen.length, v3Refused.length, 'one rate_limited per refused v3 send');
    assert.equal(limited[0].seen.length + limited[1].seen.length, 2, 'two refused in all');
    assert.ok(limited[1].seen.every((e) => e.details.startsWith('LIMIT_EXCEEDED') && e.retryAfter === 1));
    assert.equal(await stored(chat, listener), LIMIT);
  });
});
