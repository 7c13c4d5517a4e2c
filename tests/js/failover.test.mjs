// Replicas fail over (tests/tests/processes.rs): two chat-service processes
// on one PostgreSQL database and one event log in Redis, and edges that
// know both (`CONFAB_CHAT_URL=<a>,<b>`). A sender on a second edge sends
// numbered messages one after another while each replica in turn is killed
// outright (SIGKILL) and started again; the recipients' edge's stream of
// chat events breaks when its replica dies and resumes on the other from
// where it stopped. Every
// message the sender got an ack for reaches every recipient socket — a
// raven one and a mern one — exactly once, in the order it was sent.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { URL2, closeAll, connect, conversation, record, sleep, token, uid } from './confab.mjs';

const CONTROL = process.env.CONFAB_CONTROL_URL;

after(() => closeAll());

/** Kills or starts chat-service replica `which` (`a` or `b`) through the harness. */
async function replica(which, action) {
  const res = await fetch(`${CONTROL}/replica/chat-${which}/${action}`, { method: 'POST' });
  assert.equal(res.status, 200, `${action} replica ${which}: ${await res.text()}`);
}

test('messages sent while each chat-service replica is killed and started again: every acknowledged one reaches every recipient once, in order', async () => {
  const [sender, ravenUser, mernUser] = [uid('sender'), uid('raven'), uid('mern')];
  const chat = await conversation(token(sender), [ravenUser, mernUser], 'failover');
  // The sender on a second edge: its messages keep coming while the
  // recipients' edge reopens its stream on the other replica.
  const out = await connect('/raven', { base: URL2, auth: { token: token(sender) } });
  const ravenSocket = await connect('/raven', { auth: { token: token(ravenUser) } });
  const mernSocket = await connect('/mern', { auth: { token: token(mernUser) } });
  for (const s of [out, ravenSocket]) {
    const ack = await s.timeout(5000).emitWithAck('join_conversation', { conversation_id: chat });
    assert.equal(ack.success, true, JSON.stringify(ack));
  }
  const joined = await mernSocket.timeout(5000).emitWithAck('join_conversations', [chat]);
  assert.equal(joined.success, true, JSON.stringify(joined));
  const heard = {
    raven: record(ravenSocket, 'new_message'),
    mern: record(mernSocket, 'receive_message'),
  };
  const texts = {
    raven: () => heard.raven.seen.map((m) => m.text),
    mern: () => heard.mern.seen.map((m) => m.message.content),
  };

  const acked = [];
  let refused = 0;
  let sending = true;
  const sender_ = (async () => {
    for (let n = 0; sending; n++) {
      const text = `n${n}`;
      try {
        const ack = await out.timeout(5000).emitWithAck('send_message', { conversation_id: chat, text });
        if (ack.success) acked.push(text);
        else refused++;
      } catch {
        refused++;
      }
      await sleep(20);
    }
  })();

  await sleep(800);
  for (const which of ['a', 'b']) {
    await replica(which, 'kill');
    await sleep(1500);
    await replica(which, 'start');
    await sleep(1500);
  }
  sending = false;
  await sender_;
  // Every acknowledged message within a delivery's time of the last.
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && Object.values(texts).some((t) => t().filter((x) => acked.includes(x)).length < acked.length)) {
    await sleep(50);
  }
  await sleep(500);

  assert.ok(acked.length >= 50, `only ${acked.length} messages acknowledged (${refused} refused)`);
  for (const [contract, got] of Object.entries(texts)) {
    const all = got();
    assert.equal(new Set(all).size, all.length, `${contract}: a message arrived twice`);
    const numbers = all.map((t) => Number(t.slice(1)));
    assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y), `${contract}: out of order`);
    assert.deepEqual(
      all.filter((t) => acked.includes(t)),
      acked,
      `${contract}: every acknowledged message, in order (${acked.length} acknowledged, ${refused} refused, ${all.length} heard)`,
    );
  }
});
