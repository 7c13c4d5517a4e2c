// The embedded `confab` killed outright (SIGKILL) and started again on the
// same data directory, under a steady stream (tests/tests/processes.rs).
// One socket per contract, each an official socket.io-client reconnecting
// by itself; its session lived in the killed process's memory, so it
// starts afresh (`recovered` false) and, as a frontend does on connect,
// joins its conversation again — and gets, on that join (hvtsocial: on
// connect), what its user missed. Numbered messages are posted over REST
// every 20 ms; every one whose post was answered reaches every recipient,
// in order, and at most one (received in the instant before the kill, its
// receipt not yet written) comes twice.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { MESSAGING, URL, closeAll, conversation, postOnce, recipients, sleep, token, uid } from './confab.mjs';

const CONTROL = process.env.CONFAB_CONTROL_URL;

after(closeAll);

async function confab(action) {
  const res = await fetch(`${CONTROL}/replica/confab/${action}`, { method: 'POST' });
  assert.equal(res.status, 200, `${action} confab: ${await res.text()}`);
}

test('killed and started again: every answered message reaches every contract\'s socket, in order', async () => {
  const sender = uid('sender');
  const ts = token(sender);
  const users = Object.fromEntries(Object.keys(MESSAGING).map((ns) => [ns, uid(ns)]));
  const id = await conversation(ts, Object.values(users), 'embedded restart');
  const clients = await recipients(users, id);

  const acked = [];
  let killedAt = null;
  let sending = true;
  const stream = (async () => {
    for (let n = 0; sending; n++) {
      if (await postOnce([URL], ts, id, `n${n}`)) acked.push({ text: `n${n}`, at: Date.now() });
      await sleep(20);
    }
  })();
  await sleep(1000);
  killedAt = Date.now();
  await confab('kill');
  await sleep(500);
  await confab('start');
  await sleep(1500);
  sending = false;
  await stream;

  const texts = acked.map((a) => a.text);
  const deadline = Date.now() + 10000;
  const missing = () => Object.values(clients).some((c) => texts.some((t) => !c.texts.includes(t)));
  while (Date.now() < deadline && missing()) await sleep(50);
  await sleep(500);

  assert.ok(acked.length >= 50, `only ${acked.length} messages answered`);
  assert.ok(acked.some((a) => a.at > killedAt), 'messages were answered after the restart');
  for (const [ns, c] of Object.entries(clients)) {
    const all = c.texts;
    assert.equal(c.reconnects, 1, `${ns}: reconnected ${c.reconnects} times`);
    assert.deepEqual(texts.filter((t) => !all.includes(t)), [], `${ns}: answered messages lost`);
    const twice = all.filter((t, i) => all.indexOf(t) !== i);
    assert.ok(twice.length <= 1, `${ns}: ${twice.length} messages came twice (${twice})`);
    const once = all.filter((t, i) => all.indexOf(t) === i);
    const numbers = once.map((t) => Number(t.slice(1)));
    assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y), `${ns}: out of order`);
  }
});
