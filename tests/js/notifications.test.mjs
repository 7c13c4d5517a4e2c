// notify-service through the `hvtsocial` contract (seed 000: Notification,
// Story, Friend Request and Post Interaction events) with the official
// socket.io-client. The harness plays the product's internal services: it
// publishes over gRPC (`Publish`, `ListStoryViews`) when a test asks it to
// through CONFAB_CONTROL_URL. Covered: each domain event in the seed's
// shape to its audience only, new_notification + unread_count live on every
// tab, unread_count on connect after being offline, notification_read by
// the owner only, an idempotent retry, everyone-broadcast (and no
// notification events on a contract whose seed has none), story_viewed
// readable by the publisher, and a message notification for a member with
// no session.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { QUIET_MS, closeAll, connect, connected, conversation, expectSilence, next, open, record, rest, sleep, token } from './confab.mjs';

after(closeAll);

const NS = '/hvtsocial';
const CONTROL = process.env.CONFAB_CONTROL_URL;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let lastUser = 300000 + Math.floor(Math.random() * 1e9);
const nid = () => String(++lastUser);

/**
 * A user with a token; `tab()` opens one more hvtsocial socket for them and
 * returns once it is connected and has had its first `unread_count` (sent
 * on connect), so later counts are the ones a test causes.
 */
function person(name) {
  const sub = nid();
  const tok = token(sub, { name, extra: { avatar: `https://img/${name}.png` } });
  const tab = async (ns = NS) => {
    if (ns !== NS) return connect(ns, { auth: { token: tok }, transports: ['websocket'] });
    const s = open(ns, { auth: { token: tok }, transports: ['websocket'] });
    const first = next(s, 'unread_count');
    await connected(s);
    await first;
    return s;
  };
  return { sub, id: Number(sub), name, tok, tab };
}

/** An internal service's Publish, over gRPC through the harness. */
async function publish(body) {
  const res = await fetch(`${CONTROL}/notify/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function published(body) {
  const r = await publish(body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

describe('domain events', () => {
  test('post_liked reaches its audience in the seed shape, nobody else', async () => {
    const [alice, bob] = [person('Alice'), person('Bob')];
    const [sa, sb] = [await alice.tab(), await bob.tab()];
    const payload = { postId: 42, userId: alice.id, userName: 'Alice', likeCount: 3 };
    const quiet = expectSilence(sa, 'post_liked');
    const got = next(sb, 'post_liked');
    await published({ user_ids: [bob.sub], type: 'post_liked', payload });
    assert.deepEqual(await got, payload);
    await quiet;
  });

  test('each of the seed\'s six domain events arrives under its name with its payload as published', async () => {
    const [alice, bob] = [person('Alice'), person('Bob')];
    const sb = await bob.tab();
    const who = { id: alice.id, full_name: 'Alice', avatar: 'https://img/Alice.png' };
    const at = new Date().toISOString();
    const events = {
      story_created: { storyId: 1, userId: alice.id, userName: 'Alice', userAvatar: who.avatar, mediaUrl: 'https://m/1.jpg', mediaType: 'image', createdAt: at },
      friend_request_sent: { requestId: 2, from: who },
      friend_request_accepted: { friendId: alice.id, friend: who },
      friend_request_updated: { action: 'rejected', friendId: alice.id },
      post_liked: { postId: 3, userId: alice.id, userName: 'Alice', likeCount: 4 },
      post_commented: { postId: 3, comment: { id: 5, user: who, content: 'nice', created_at: at }, commentCount: 1 },
    };
    for (const [type, payload] of Object.entries(events)) {
      const got = next(sb, type);
      await published({ user_ids: [bob.sub], type, payload });
      assert.deepEqual(await got, payload, type);
    }
  });

  test('friend_request_sent with a notification: the event, new_notification and unread_count on every tab', async () => {
    const [alice, bob] = [person('Alice'), person('Bob')];
    const [b1, b2] = [await bob.tab(), await bob.tab()];
    const events = [b1, b2].map((s) => ({
      sent: next(s, 'friend_request_sent'),
      note: next(s, 'new_notification'),
      count: next(s, 'unread_count'),
    }));
    const payload = { requestId: 7, from: { id: alice.id, full_name: 'Alice', avatar: 'https://img/Alice.png' } };
    await published({
      user_ids: [bob.sub],
      type: 'friend_request_sent',
      payload,
      notification: {
        type: 'friend_request',
        content: 'Alice sent you a friend request',
        actor: { id: alice.sub, name: 'Alice', avatar: 'https://img/Alice.png' },
        link: '/friends/requests',
      },
    });
    for (const e of events) {
      assert.deepEqual(await e.sent, payload);
      const n = await e.note;
      assert.equal(typeof n.id, 'number');
      assert.equal(n.type, 'friend_request');
      assert.equal(n.content, 'Alice sent you a friend request');
      assert.deepEqual(n.actor, { id: alice.id, full_name: 'Alice', avatar: 'https://img/Alice.png' });
      assert.match(n.created_at, ISO);
      assert.equal(n.is_read, false);
      assert.equal(n.link, '/friends/requests');
      assert.deepEqual(await e.count, { count: 1 });
    }
  });

  test('everyone: every hvtsocial socket gets story_created; a raven socket gets no notification event', async () => {
    const [alice, bob, carol] = [person('Alice'), person('Bob'), person('Carol')];
    const [sa, sb] = [await alice.tab(), await bob.tab()];
    const raven = await carol.tab('/raven');
    const quiet = expectSilence(raven, ['story_created', 'new_notification', 'unread_count']);
    const story = { storyId: 9, userId: alice.id, userName: 'Alice', userAvatar: '', mediaUrl: 'https://m/9.jpg', mediaType: 'image', createdAt: new Date().toISOString() };
    const got = [next(sa, 'story_created'), next(sb, 'story_created')];
    await published({ everyone: true, type: 'story_created', payload: story });
    for (const g of got) assert.deepEqual(await g, story);
    await quiet;
  });

  test('a bad publish is refused with a stable code and delivers nothing', async () => {
    const bob = person('Bob');
    const sb = await bob.tab();
    const quiet = expectSilence(sb, ['post_liked', 'new_notification', 'unread_count']);
    for (const [body, code] of [
      [{ user_ids: [bob.sub], type: 'no such event', payload: {} }, 'INVALID_ARGUMENT'],
      [{ user_ids: [bob.sub], type: 'post_liked', payload: '[1,2]' }, 'INVALID_ARGUMENT'],
      [{ user_ids: [], type: 'post_liked', payload: {} }, 'INVALID_ARGUMENT'],
    ]) {
      const r = await publish(body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, code);
    }
    await quiet;
  });
});

describe('notifications', () => {
  test('published while offline: unread_count on connect, the notification in the REST list', async () => {
    const [alice, carol] = [person('Alice'), person('Carol')];
    await published({
      user_ids: [carol.sub],
      type: 'post_commented',
      payload: { postId: 5, comment: { id: 1, user: { id: alice.id, full_name: 'Alice', avatar: '' }, content: 'nice', created_at: new Date().toISOString() }, commentCount: 1 },
      notification: { type: 'comment', content: 'Alice commented on your post', actor: { id: alice.sub, name: 'Alice' } },
    });
    // Listen from the handshake on: the count comes right after connect.
    const sc = open(NS, { auth: { token: carol.tok }, transports: ['websocket'] });
    const count = next(sc, 'unread_count');
    await connected(sc);
    assert.deepEqual(await count, { count: 1 });
    const list = await rest('GET', '/api/notifications', carol.tok);
    assert.equal(list.status, 200);
    assert.equal(list.body.notifications.length, 1);
    assert.equal(list.body.notifications[0].type, 'comment');
    assert.equal(list.body.notifications[0].read, false);
  });

  test('notification_read: the owner\'s unread_count drops on every tab; another user\'s read changes nothing', async () => {
    const [alice, bob] = [person('Alice'), person('Bob')];
    const [b1, b2] = [await bob.tab(), await bob.tab()];
    const sa = await alice.tab();
    const note = next(b1, 'new_notification');
    // The publish's own count comes after its notification: wait for it on
    // both tabs, so the silence below is about Alice's read alone.
    const first = [next(b1, 'unread_count'), next(b2, 'unread_count')];
    await published({ user_ids: [bob.sub], type: 'post_liked', payload: { postId: 1, userId: alice.id, userName: 'Alice', likeCount: 1 }, notification: { type: 'like', content: 'Alice liked your post' } });
    const { id } = await note;
    for (const c of first) assert.deepEqual(await c, { count: 1 });

    // Alice names Bob's notification: nothing is read, nobody hears a count.
    const quiet = expectSilence([b1, b2], 'unread_count');
    const theirs = await sa.emitWithAck('notification_read', { notificationId: id });
    assert.equal(theirs.success, true);
    assert.deepEqual(theirs.data.read, []);
    await quiet;
    assert.equal((await rest('GET', '/api/notifications/unread-count', bob.tok)).body.count, 1);

    const counts = [next(b1, 'unread_count'), next(b2, 'unread_count')];
    b1.emit('notification_read', { notificationId: id });
    for (const c of counts) assert.deepEqual(await c, { count: 0 });
  });

  test('an idempotent retry delivers one notification', async () => {
    const bob = person('Bob');
    const sb = await bob.tab();
    const notes = record(sb, 'new_notification');
    const body = { user_ids: [bob.sub], type: 'friend_request_accepted', payload: { friendId: 1, friend: { id: 1, full_name: 'Alice', avatar: '' } }, notification: { type: 'friend_request', content: 'Alice accepted' }, idempotency_key: `retry-${bob.sub}` };
    const first = await published(body);
    const again = await published(body);
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.equal(again.event_id, first.event_id);
    await notes.count(1);
    await sleep(QUIET_MS);
    assert.equal(notes.seen.length, 1);
  });

  test('a message to a member with no session becomes a message notification for them only', async () => {
    const [alice, bob, carol] = [person('Alice'), person('Bob'), person('Carol')];
    const id = await conversation(alice.tok, [bob.sub, carol.sub]);
    const [sa, sb] = [await alice.tab(), await bob.tab()];
    const quiet = expectSilence(sb, 'new_notification');
    const got = next(sb, 'receive_message');
    sa.emit('send_message', { chatId: Number(id), text: 'are you there?' });
    await got;
    await quiet;
    let list;
    for (let i = 0; i < 50; i++) {
      list = await rest('GET', '/api/notifications', carol.tok);
      if (list.body.notifications.length) break;
      await sleep(50);
    }
    assert.equal(list.body.notifications.length, 1, JSON.stringify(list.body));
    assert.equal(list.body.notifications[0].type, 'message');
    assert.equal((await rest('GET', '/api/notifications/unread-count', bob.tok)).body.count, 0);
  });
});

describe('story_viewed', () => {
  test('recorded for the token\'s user and readable by the publisher; someone else\'s viewerId is refused', async () => {
    const [alice, bob] = [person('Alice'), person('Bob')];
    const sb = await bob.tab();
    const storyId = Math.floor(Math.random() * 1e9);
    const ok = await sb.emitWithAck('story_viewed', { storyId, viewerId: bob.id });
    assert.equal(ok.success, true, JSON.stringify(ok));
    const err = next(sb, 'error');
    const refused = await sb.emitWithAck('story_viewed', { storyId, viewerId: alice.id });
    assert.equal(refused.success, false);
    assert.equal(refused.error.code, 'PERMISSION_DENIED');
    assert.equal((await err).event, 'story_viewed');
    const res = await fetch(`${CONTROL}/notify/story-views/${storyId}`);
    const views = await res.json();
    assert.equal(views.total, 1, JSON.stringify(views));
    assert.equal(views.views[0].viewer, bob.sub);
  });
});
