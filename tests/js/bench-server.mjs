// The benchmark's Node.js baseline: the `raven` flow a seed's user runs
// today, written from seed 002 with socket.io 4, everything in memory.
// Started by `confab-bench` (tests/bench) as a child process:
//
//   PORT=3100 JWT_SECRET=… node tests/js/bench-server.mjs
//
// - `/raven` namespace; the handshake's `auth.token` is verified (HS256) by
//   a namespace middleware, refusals are `connect_error` with the seed's codes.
// - `POST /api/conversations {members, name}` (Bearer token of the owner)
//   defines a conversation in memory and answers `{id}`, as confab's REST does.
// - `join_conversation {conversation_id}` joins the room after a membership
//   check; `send_message {conversation_id, text}` emits `new_message` to the
//   room, the sender included. Both answer an ack when the client passes one.
// - `GET /healthz` answers 200 once listening.
// - `RECOVERY=1` turns connection state recovery on.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import jwt from 'jsonwebtoken';

const PORT = Number(process.env.PORT ?? 3100);
const HOST = process.env.HOST ?? '127.0.0.1';
const SECRET = process.env.JWT_SECRET ?? '';
if (!SECRET) {
  console.error('JWT_SECRET is required');
  process.exit(2);
}

/** conversation id → Set of member user ids. */
const conversations = new Map();
let nextConversation = 1;
let nextMessage = 1;

function verify(token) {
  const claims = jwt.verify(token, SECRET, { algorithms: ['HS256'] });
  return { userId: String(claims.sub), name: claims.name ?? String(claims.sub) };
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const http = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return json(res, 200, { ok: true });
  if (req.method === 'POST' && req.url === '/api/conversations') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let me;
      try {
        me = verify((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      } catch {
        return json(res, 401, { error: { code: 'INVALID_TOKEN', message: 'invalid token' } });
      }
      const { members = [], name = '' } = JSON.parse(body || '{}');
      const id = String(nextConversation++);
      conversations.set(id, new Set([me.userId, ...members.map(String)]));
      json(res, 201, { id, name, members: [...conversations.get(id)] });
    });
    return;
  }
  json(res, 404, { error: { code: 'NOT_FOUND', message: 'no such route' } });
});

// RECOVERY=1: socket.io's connection state recovery (its 2-minute default
// window), for the `drops` scenario's comparison.
const recovery = process.env.RECOVERY === '1'
  ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true } }
  : {};
const io = new Server(http, { transports: ['websocket'], serveClient: false, ...recovery });
const raven = io.of('/raven');

raven.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (!token) return next(new Error('AUTHENTICATION_REQUIRED'));
  try {
    socket.data.user = verify(token);
    next();
  } catch (e) {
    next(new Error(e.name === 'TokenExpiredError' ? 'TOKEN_EXPIRED' : 'INVALID_TOKEN'));
  }
});

function fail(socket, ack, code, message, details) {
  const error = { code, message, details };
  socket.emit('error', error);
  if (typeof ack === 'function') ack({ success: false, error });
}

raven.on('connection', (socket) => {
  const me = socket.data.user;

  socket.on('join_conversation', (p, ack) => {
    const id = String(p?.conversation_id ?? '');
    if (!conversations.get(id)?.has(me.userId)) {
      return fail(socket, ack, 'JOIN_FAILED', 'Failed to join conversation', 'NOT_A_MEMBER');
    }
    socket.join(`conv:${id}`);
    if (typeof ack === 'function') ack({ success: true, data: { conversationId: id } });
  });

  socket.on('leave_conversation', (p, ack) => {
    socket.leave(`conv:${String(p?.conversation_id ?? '')}`);
    if (typeof ack === 'function') ack({ success: true });
  });

  socket.on('send_message', (p, ack) => {
    const id = String(p?.conversation_id ?? '');
    if (!conversations.get(id)?.has(me.userId)) {
      return fail(socket, ack, 'SEND_MESSAGE_FAILED', 'Failed to send message', 'NOT_A_MEMBER');
    }
    const message = {
      id: String(nextMessage++),
      conversationId: id,
      senderId: me.userId,
      senderName: me.name,
      text: p.text,
      createdAt: new Date().toISOString(),
    };
    raven.to(`conv:${id}`).emit('new_message', message);
    if (typeof ack === 'function') ack({ success: true, data: message });
  });
});

http.listen(PORT, HOST, () => console.log(`bench-server listening on http://${HOST}:${PORT}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
