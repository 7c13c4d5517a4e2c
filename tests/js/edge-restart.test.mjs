// Edges stopped and killed under a steady stream (tests/tests/processes.rs):
// two edge processes sharing recoverable sessions in Redis, one recipient
// socket per contract, each an official socket.io-client reconnecting by
// itself. When its edge goes away, the client's next connection goes to the
// other edge, as a load balancer sends it (the test points the client's
// manager there). Numbered messages are posted over REST to whichever edge
// is up, every 20 ms, while
// - edge 1 is told to stop (SIGTERM), started again, then edge 2 (a
//   rolling restart: an edge told to stop closes its sockets at once);
// - edge 1 is killed outright (SIGKILL) and started again.
// Every reconnect resumes its session (`recovered`), and every message
// whose post was answered reaches every recipient exactly once, in order.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { MESSAGING, URL, URL2, closeAll, conversation, postOnce, recipients, sleep, token, uid } from './confab.mjs';

const CONTROL = process.env.CONFAB_CONTROL_URL;
const EDGES = [URL, URL2];

after(closeAll);

/** `kill`, `term` or `start` edge 1 or 2 through the harness. */
async function edge(n, action) {
  const res = await fetch(`${CONTROL}/replica/edge-${n}/${action}`, { method: 'POST' });
  assert.equal(res.status, 200, `${action} edge ${n}: ${await res.text()}`);
}

test('a rolling restart and a killed edge: every session resumes on the other edge, every answered message reaches everyone once, in order', async () => {
  const sender = uid('sender');
  const ts = token(sender);
  const users = Object.fromEntries(Object.keys(MESSAGING).map((ns) => [ns, uid(ns)]));
  const id = await conversation(ts, Object.values(users), 'edge restarts');
  const clients = await recipients(users, id);
  for (const c of Object.values(clients)) {
    // The load balancer: the next connection goes to the other edge.
    c.s.on('disconnect', () => {
      const uri = c.s.io.uri;
      c.s.io.uri = uri.startsWith(URL) ? uri.replace(URL, URL2) : uri.replace(URL2, URL);
    });
  }

  const acked = [];
  let failed = 0;
  let sending = true;
  const stream = (async () => {
    for (let n = 0; sending; n++) {
      if (await postOnce(EDGES, ts, id, `n${n}`)) acked.push(`n${n}`);
      else failed++;
      await sleep(20);
    }
  })();

  await sleep(500);
  // A rolling restart: every client moves to edge 2, then back to edge 1.
  await edge(1, 'term');
  await sleep(1500);
  await edge(1, 'start');
  await sleep(500);
  await edge(2, 'term');
  await sleep(1500);
  await edge(2, 'start');
  await sleep(500);
  // Every client is on edge 1 again: kill it.
  await edge(1, 'kill');
  await sleep(1500);
  await edge(1, 'start');
  await sleep(500);
  sending = false;
  await stream;

  const deadline = Date.now() + 10000;
  const missing = () => Object.values(clients).some((c) => acked.some((t) => !c.texts.includes(t)));
  while (Date.now() < deadline && missing()) await sleep(50);
  await sleep(500);

  assert.ok(acked.length >= 50, `only ${acked.length} messages answered (${failed} not)`);
  for (const [ns, c] of Object.entries(clients)) {
    const all = c.texts;
    assert.equal(c.reconnects, 3, `${ns}: reconnected ${c.reconnects} times`);
    assert.equal(c.recovered, c.reconnects, `${ns}: ${c.recovered} of ${c.reconnects} reconnects recovered`);
    assert.equal(new Set(all).size, all.length, `${ns}: a message arrived twice`);
    const numbers = all.map((t) => Number(t.slice(1)));
    assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y), `${ns}: out of order`);
    const lost = acked.filter((t) => !all.includes(t));
    assert.deepEqual(lost, [], `${ns}: answered messages lost (${acked.length} answered, ${all.length} heard)`);
  }
});
