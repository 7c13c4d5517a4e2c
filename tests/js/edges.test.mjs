// Room presence across two edges on the same services, with the official
// socket.io-client: the harness (tests/tests/edges.rs) boots one system and
// a second edge, passed as CONFAB_URL (edge 1) and CONFAB_URL2 (edge 2).
// presence-service decides whether a socket is a user's first in a
// conversation or their last one out, whatever edge it is on, so for v3
// (user_joined_chat / user_left), dreamstudio (member:joined / member:left)
// and raven (user_joined / user_left):
// - a member on edge 2 hears a user on edge 1 join and leave;
// - a user with sockets on both edges is announced once, and leaves only
//   when the last socket leaves;
// - a disconnect on edge 1 ends the user's room presence for edge 2 too:
//   v3 tells it (user_left); dreamstudio and raven tell nothing, as their
//   seeds' servers, but the user's next join is announced again.
// The user's own sockets never hear their own room presence. A third edge
// (CONFAB_URL_NO_PRESENCE) cannot reach presence-service: joining through
// it still works, unannounced.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  QUIET_MS,
  URL,
  URL2,
  closeAll,
  connect,
  conversation,
  expectSilence,
  next,
  nextWhere,
  record,
  sleep,
  token,
  uid,
} from './confab.mjs';

after(closeAll);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const EDGE1 = URL;
const EDGE2 = URL2;
const NO_PRESENCE = process.env.CONFAB_URL_NO_PRESENCE ?? '';

test('the harness passes two different edges (and one without presence-service)', () => {
  assert.ok(EDGE2, 'CONFAB_URL2 is not set');
  assert.ok(NO_PRESENCE, 'CONFAB_URL_NO_PRESENCE is not set');
  assert.equal(new Set([EDGE1, EDGE2, NO_PRESENCE]).size, 3);
});

/** A user with a login name; `numeric` for dreamstudio's numeric ids. */
function user(label, { numeric = false } = {}) {
  const id = numeric ? String(100000 + Math.floor(Math.random() * 1e9)) : uid(label);
  const username = `${label}_${id.slice(-4)}`;
  const name = label[0].toUpperCase() + label.slice(1);
  return { id, name, username, token: token(id, { name, extra: { username } }) };
}

/** A socket of `u` on `edge` speaking `namespace`, connected. */
function on(edge, namespace, u, auth = {}) {
  return connect(namespace, { base: edge, auth: { token: u.token, ...auth } });
}

describe('v3: user_joined_chat / user_left', () => {
  const v3 = (edge, u) => on(edge, '/v3', u);
  const join = async (s, chatid) => {
    const ack = await s.timeout(3000).emitWithAck('join_chat', { chatid });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  const leave = async (s, chatid) => {
    const ack = await s.timeout(3000).emitWithAck('leave_chat', { chatid });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  async function chat() {
    const [alice, bob] = [user('alice'), user('bob')];
    const chatid = await conversation(alice.token, [bob.id], 'two edges');
    const sa = await v3(EDGE2, alice);
    await join(sa, chatid);
    return { alice, bob, chatid, sa };
  }

  test('a member on edge 2 hears a user on edge 1 join and leave the chat', async () => {
    const { bob, chatid, sa } = await chat();
    const sb = await v3(EDGE1, bob);
    const self = expectSilence(sb, ['user_joined_chat', 'user_left']);
    const joined = next(sa, 'user_joined_chat');
    await join(sb, chatid);
    const j = await joined;
    assert.equal(j.profileid, bob.id);
    assert.equal(j.username, bob.username);
    assert.equal(j.role, 'member');
    assert.equal(j.isOnline, true);
    assert.match(j.joinedAt, ISO);
    const left = next(sa, 'user_left');
    await leave(sb, chatid);
    assert.deepEqual(await left, { profileid: bob.id, username: bob.username });
    await self;
  });

  test('a user with sockets on both edges is announced once, and leaves with the last one', async () => {
    const { bob, chatid, sa } = await chat();
    const [sb1, sb2] = [await v3(EDGE1, bob), await v3(EDGE2, bob)];
    const self = expectSilence([sb1, sb2], ['user_joined_chat', 'user_left']);
    const joins = record(sa, 'user_joined_chat');
    await join(sb1, chatid);
    await joins.count(1);
    await join(sb2, chatid);
    await sleep(QUIET_MS);
    assert.equal(joins.seen.length, 1, 'the second socket, on the other edge, is not announced');
    const stays = expectSilence(sa, 'user_left');
    await leave(sb1, chatid);
    await stays;
    const left = next(sa, 'user_left');
    await leave(sb2, chatid);
    assert.equal((await left).profileid, bob.id);
    await self;
    joins.stop();
  });

  test('a disconnect on edge 1 is heard on edge 2 — when it was the last socket', async () => {
    const { bob, chatid, sa } = await chat();
    const [sb1, sb2] = [await v3(EDGE1, bob), await v3(EDGE2, bob)];
    const joined = next(sa, 'user_joined_chat');
    await join(sb1, chatid);
    await joined;
    await join(sb2, chatid);
    // Bob's socket on edge 2 closes: his edge-1 socket is still in the chat.
    const stays = expectSilence(sa, 'user_left');
    sb2.disconnect();
    await stays;
    const left = next(sa, 'user_left');
    sb1.disconnect();
    assert.deepEqual(await left, { profileid: bob.id, username: bob.username });
  });
});

describe('dreamstudio: member:joined / member:left', () => {
  const ds = (edge, u) => on(edge, '/dreamstudio', u, { userId: Number(u.id) });
  const join = async (s, roomId) => {
    const ack = await s.timeout(3000).emitWithAck('join_room', { roomId });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  const leave = async (s, roomId) => {
    const ack = await s.timeout(3000).emitWithAck('leave_room', { roomId });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  async function room() {
    const [alice, bob] = [user('alice', { numeric: true }), user('bob', { numeric: true })];
    const roomId = Number(await conversation(alice.token, [bob.id], 'studio'));
    const sa = await ds(EDGE2, alice);
    await join(sa, roomId);
    return { alice, bob, roomId, sa };
  }

  test('a member on edge 2 hears a user on edge 1 join and leave the room', async () => {
    const { bob, roomId, sa } = await room();
    const sb = await ds(EDGE1, bob);
    const own = next(sb, 'member:joined');
    const joined = next(sa, 'member:joined');
    await join(sb, roomId);
    const j = await joined;
    assert.deepEqual([j.userId, j.roomId], [Number(bob.id), roomId]);
    assert.match(j.timestamp, ISO);
    // The joiner hears its own join (the seed's room includes it), alike.
    assert.deepEqual(await own, j);
    const notSelf = expectSilence(sb, 'member:left');
    const left = next(sa, 'member:left');
    await leave(sb, roomId);
    const l = await left;
    assert.deepEqual([l.userId, l.roomId], [Number(bob.id), roomId]);
    assert.match(l.timestamp, ISO);
    await notSelf;
  });

  test('a user with sockets on both edges is announced once, and leaves with the last one', async () => {
    const { bob, roomId, sa } = await room();
    const [sb1, sb2] = [await ds(EDGE1, bob), await ds(EDGE2, bob)];
    const joins = record(sa, 'member:joined');
    await join(sb1, roomId);
    await joins.count(1);
    // Bob's first socket does not hear his second one join, either.
    const otherTab = expectSilence(sb1, 'member:joined');
    await join(sb2, roomId);
    await sleep(QUIET_MS);
    assert.equal(joins.seen.length, 1, 'the second socket, on the other edge, is not announced');
    await otherTab;
    const stays = expectSilence([sa, sb1, sb2], 'member:left');
    await leave(sb1, roomId);
    await stays;
    const left = next(sa, 'member:left');
    await leave(sb2, roomId);
    assert.equal((await left).userId, Number(bob.id));
    joins.stop();
  });

  test('a disconnect on edge 1 ends the room presence on edge 2 too: no member:left (as the seed), the next join is announced', async () => {
    const { bob, roomId, sa } = await room();
    const sb = await ds(EDGE1, bob);
    const joined = next(sa, 'member:joined');
    await join(sb, roomId);
    await joined;
    const quiet = expectSilence(sa, 'member:left');
    const offline = next(sa, 'user:offline');
    sb.disconnect();
    assert.equal((await offline).userId, Number(bob.id));
    await quiet;
    const again = next(sa, 'member:joined');
    await join(await ds(EDGE1, bob), roomId);
    assert.equal((await again).userId, Number(bob.id));
  });
});

describe('raven: user_joined / user_left', () => {
  const raven = (edge, u) => on(edge, '/raven', u);
  const join = async (s, conversation_id) => {
    const ack = await s.timeout(3000).emitWithAck('join_conversation', { conversation_id });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  const leave = async (s, conversation_id) => {
    const ack = await s.timeout(3000).emitWithAck('leave_conversation', { conversation_id });
    assert.equal(ack.success, true, JSON.stringify(ack));
  };
  async function chat() {
    const [me, peer] = [user('me'), user('peer')];
    const id = await conversation(me.token, [peer.id], 'raven');
    const sp = await raven(EDGE2, peer);
    await join(sp, id);
    return { me, peer, id, sp };
  }

  test('a member on edge 2 hears a user on edge 1 join and leave the conversation', async () => {
    const { me, id, sp } = await chat();
    const s = await raven(EDGE1, me);
    const self = expectSilence(s, ['user_joined', 'user_left']);
    const joined = next(sp, 'user_joined');
    await join(s, id);
    const payload = { conversation_id: id, user_id: me.id, username: me.username };
    assert.deepEqual(await joined, payload);
    const left = next(sp, 'user_left');
    await leave(s, id);
    assert.deepEqual(await left, payload);
    await self;
  });

  test('a user with sockets on both edges is announced once, and leaves with the last one', async () => {
    const { me, id, sp } = await chat();
    const [s1, s2] = [await raven(EDGE1, me), await raven(EDGE2, me)];
    const self = expectSilence([s1, s2], ['user_joined', 'user_left']);
    const joins = record(sp, 'user_joined');
    await join(s1, id);
    await joins.count(1);
    await join(s2, id);
    await sleep(QUIET_MS);
    assert.equal(joins.seen.length, 1, 'the second socket, on the other edge, is not announced');
    const stays = expectSilence(sp, 'user_left');
    await leave(s2, id);
    await stays;
    const left = next(sp, 'user_left');
    await leave(s1, id);
    assert.equal((await left).user_id, me.id);
    await self;
    joins.stop();
  });

  test('a disconnect on edge 1 ends the room presence on edge 2 too: no user_left (as the app), the next join is announced', async () => {
    const { me, id, sp } = await chat();
    const s = await raven(EDGE1, me);
    const joined = next(sp, 'user_joined');
    await join(s, id);
    await joined;
    const quiet = expectSilence(sp, 'user_left');
    const offline = nextWhere(sp, 'friend_status_changed', (p) => p.status === 'offline');
    s.disconnect();
    assert.equal((await offline).user_id, me.id);
    await quiet;
    const again = next(sp, 'user_joined');
    await join(await raven(EDGE1, me), id);
    assert.equal((await again).user_id, me.id);
  });
});

describe('across contracts', () => {
  test('a v3 user joining on edge 1 is announced to raven and dreamstudio members on edge 2, once', async () => {
    const [v3user, ravenUser, dsUser] = ['vee', 'ray', 'dee'].map((l) => user(l, { numeric: true }));
    const id = await conversation(v3user.token, [ravenUser.id, dsUser.id], 'mixed');
    const sr = await on(EDGE2, '/raven', ravenUser);
    const sd = await on(EDGE2, '/dreamstudio', dsUser, { userId: Number(dsUser.id) });
    assert.equal((await sr.timeout(3000).emitWithAck('join_conversation', { conversation_id: id })).success, true);
    // The raven member hears the dreamstudio one join first: wait for it, so
    // it is not taken for the v3 user's join.
    const dsJoin = next(sr, 'user_joined');
    assert.equal((await sd.timeout(3000).emitWithAck('join_room', { roomId: Number(id) })).success, true);
    assert.equal((await dsJoin).user_id, dsUser.id);
    const heard = [next(sr, 'user_joined'), next(sd, 'member:joined')];
    const sv = await on(EDGE1, '/v3', v3user);
    assert.equal((await sv.timeout(3000).emitWithAck('join_chat', { chatid: id })).success, true);
    const [r, d] = await Promise.all(heard);
    assert.deepEqual(r, { conversation_id: id, user_id: v3user.id, username: v3user.username });
    assert.deepEqual([d.userId, d.roomId], [Number(v3user.id), Number(id)]);
    // A second v3 socket of the same user, on edge 2: nobody hears it.
    const quiet = expectSilence([sr, sd], ['user_joined', 'member:joined']);
    const sv2 = await on(EDGE2, '/v3', v3user);
    assert.equal((await sv2.timeout(3000).emitWithAck('join_chat', { chatid: id })).success, true);
    await quiet;
  });
});

describe('presence-service unreachable', () => {
  test('joining through an edge that cannot reach presence-service works, unannounced (v3, dreamstudio, raven)', async () => {
    const [alice, bob] = [user('alice', { numeric: true }), user('bob', { numeric: true })];
    const id = await conversation(alice.token, [bob.id], 'degraded');
    // Alice, on a healthy edge, is in the conversation in all three contracts.
    const av = await on(EDGE1, '/v3', alice);
    const ad = await on(EDGE1, '/dreamstudio', alice, { userId: Number(alice.id) });
    const ar = await on(EDGE1, '/raven', alice);
    assert.equal((await av.timeout(3000).emitWithAck('join_chat', { chatid: id })).success, true);
    assert.equal((await ad.timeout(3000).emitWithAck('join_room', { roomId: Number(id) })).success, true);
    assert.equal((await ar.timeout(3000).emitWithAck('join_conversation', { conversation_id: id })).success, true);
    // And a v3 socket of hers on the degraded edge: it hears no join either
    // (nothing is announced from the edge's own rooms instead).
    const avn = await on(NO_PRESENCE, '/v3', alice);
    assert.equal((await avn.timeout(3000).emitWithAck('join_chat', { chatid: id })).success, true);
    const unannounced = expectSilence([av, ad, ar, avn], ['user_joined_chat', 'member:joined', 'user_joined']);

    const bv = await on(NO_PRESENCE, '/v3', bob);
    const chatJoined = next(bv, 'chat_joined');
    const v = await bv.timeout(3000).emitWithAck('join_chat', { chatid: id });
    assert.equal(v.success, true, JSON.stringify(v));
    assert.equal((await chatJoined).chatid, id);

    const bd = await on(NO_PRESENCE, '/dreamstudio', bob, { userId: Number(bob.id) });
    const own = next(bd, 'member:joined');
    const d = await bd.timeout(3000).emitWithAck('join_room', { roomId: Number(id) });
    assert.equal(d.success, true, JSON.stringify(d));
    assert.match((await own).timestamp, ISO);

    const br = await on(NO_PRESENCE, '/raven', bob);
    const joinedConversation = next(br, 'joined_conversation');
    const r = await br.timeout(3000).emitWithAck('join_conversation', { conversation_id: id });
    assert.equal(r.success, true, JSON.stringify(r));
    await joinedConversation;
    await unannounced;

    // The joins are real: Alice's message reaches Bob's v3 socket there.
    const heard = next(bv, 'new_message');
    av.emit('send_message', { chatid: id, clientMessageId: `c-${Date.now()}`, messageType: 'text', content: 'still here' });
    assert.equal((await heard).message.content, 'still here');
  });
});
