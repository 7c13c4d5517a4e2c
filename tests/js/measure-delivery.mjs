// How long an event takes from the action that causes it to another socket,
// on this machine: the figure absence checks (expectSilence in confab.mjs)
// must wait at least. Not a test; run it against a running confab, ideally
// while the suite runs beside it:
//
//   CONFAB_URL=http://127.0.0.1:3000 CONFAB_JWT_SECRET=… node measure-delivery.mjs [tries]
//
// Three paths, each `tries` times (400 by default), one at a time:
//   message   raven send_message → new_message on the other member's socket
//             (edge → chat-service → event stream → fan-out)
//   typing    mern typing start → typing_status on the other member's socket
//             (edge → presence-service → event stream → fan-out)
//   presence  a user's first socket connects → user_online at a peer
//             (handshake → presence-service session → event stream)
import { closeAll, connect, conversation, next, token, uid } from './confab.mjs';

const tries = Number(process.argv[2] ?? 400);

function stats(name, ms) {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const fmt = (x) => x.toFixed(1);
  console.log(
    `${name.padEnd(9)} n=${sorted.length} p50=${fmt(at(0.5))} p90=${fmt(at(0.9))} p99=${fmt(at(0.99))} max=${fmt(sorted.at(-1))} ms`,
  );
}

async function message() {
  const [a, b] = [uid('a'), uid('b')];
  const id = await conversation(token(a), [b]);
  const sa = await connect('/raven', { auth: { token: token(a) }, transports: ['websocket'] });
  const sb = await connect('/raven', { auth: { token: token(b) }, transports: ['websocket'] });
  for (const s of [sa, sb]) await s.emitWithAck('join_conversation', { conversation_id: id });
  const ms = [];
  for (let i = 0; i < tries; i++) {
    const got = next(sb, 'new_message');
    const own = next(sa, 'new_message');
    const t0 = performance.now();
    sa.emit('send_message', { conversation_id: id, text: `m${i}` });
    await got;
    ms.push(performance.now() - t0);
    await own;
  }
  return ms;
}

async function typing() {
  const ms = [];
  // Typing starts are throttled to 30 a minute per user: a fresh pair every 25.
  for (let done = 0; done < tries; ) {
    const [a, b] = [uid('a'), uid('b')];
    const id = await conversation(token(a), [b]);
    const sa = await connect('/mern', { auth: { token: token(a) }, transports: ['websocket'] });
    const sb = await connect('/mern', { auth: { token: token(b) }, transports: ['websocket'] });
    for (const s of [sa, sb]) await s.emitWithAck('join_conversations', [id]);
    for (let i = 0; i < 25 && done < tries; i++, done++) {
      const started = next(sb, 'typing_status');
      const t0 = performance.now();
      sa.emit('typing', { conversationId: id, isTyping: true });
      await started;
      ms.push(performance.now() - t0);
      const stopped = next(sb, 'typing_status');
      sa.emit('typing', { conversationId: id, isTyping: false });
      await stopped;
    }
    sa.disconnect();
    sb.disconnect();
  }
  return ms;
}

async function presence() {
  const [a, b] = [uid('a'), uid('b')];
  await conversation(token(a), [b]);
  const sb = await connect('/mern', { auth: { token: token(b) }, transports: ['websocket'] });
  const ms = [];
  for (let i = 0; i < tries; i++) {
    const online = next(sb, 'user_online');
    const t0 = performance.now();
    const sa = await connect('/raven', { auth: { token: token(a) }, transports: ['websocket'] });
    await online;
    ms.push(performance.now() - t0);
    const offline = next(sb, 'user_offline');
    sa.disconnect();
    await offline;
  }
  return ms;
}

stats('message', await message());
stats('typing', await typing());
stats('presence', await presence());
closeAll();
