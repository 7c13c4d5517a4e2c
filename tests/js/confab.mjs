// Helpers shared by the contract suites: tokens, connecting with the official
// socket.io-client, waiting for events with a deadline, the REST API, and
// chat-service's test controls. The Rust harness (tests/src/app.rs) starts
// confab and passes CONFAB_URL, CONFAB_JWT_SECRET and CONFAB_CONTROL_URL.
import { createHmac, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';

export const URL = process.env.CONFAB_URL ?? 'http://127.0.0.1:3000';
const SECRET = process.env.CONFAB_JWT_SECRET ?? '';
const CONTROL = process.env.CONFAB_CONTROL_URL ?? '';

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT for `sub`; `expiresIn` seconds (negative: already expired). */
export function token(sub, { name, expiresIn = 3600, secret = SECRET, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name, iat: now, exp: now + expiresIn, ...extra })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** A user id unique to this run, so suites never share state. */
export function uid(label = 'u') {
  return `${label}${randomBytes(4).toString('hex')}`;
}

const open = new Set();

/** Connects with socket.io-client; resolves once connected, rejects with connect_error. */
export function connect(namespace = '/raven', options = {}) {
  const socket = io(URL + namespace, { reconnection: false, forceNew: true, timeout: 5000, ...options });
  open.add(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => reject(err));
  });
}

/** The connect_error a handshake gets (fails if it connects instead). */
export async function refused(namespace, options = {}) {
  try {
    const s = await connect(namespace, options);
    s.disconnect();
  } catch (err) {
    return err;
  }
  throw new Error('connection was accepted but should have been refused');
}

export function closeAll() {
  for (const s of open) s.disconnect();
  open.clear();
}

/** The next `event` on `socket` (its first argument), or a failure after `ms`. */
export function next(socket, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const on = (payload) => {
      clearTimeout(timer);
      resolve(payload);
    };
    socket.once(event, on);
  });
}

/** Resolves if `event` does NOT arrive within `ms`; records what did arrive otherwise. */
export function silence(socket, event, ms = 500) {
  return new Promise((resolve, reject) => {
    const on = (payload) => {
      clearTimeout(timer);
      reject(new Error(`unexpected '${event}': ${JSON.stringify(payload)}`));
    };
    const timer = setTimeout(() => {
      socket.off(event, on);
      resolve();
    }, ms);
    socket.once(event, on);
  });
}

/** Calls the REST API; resolves to {status, body}. */
export async function rest(method, path, tok, body) {
  const headers = { 'content-type': 'application/json' };
  if (tok) headers.authorization = `Bearer ${tok}`;
  const res = await fetch(URL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Creates a conversation over REST as `owner` with `members`; returns its id. */
export async function conversation(ownerToken, members, name = 'test') {
  const { status, body } = await rest('POST', '/api/conversations', ownerToken, { members, name });
  if (status !== 201) throw new Error(`create conversation: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

/** Stops or starts chat-service (only under the Rust harness). */
export async function control(action) {
  if (!CONTROL) throw new Error('CONFAB_CONTROL_URL is not set');
  const res = await fetch(`${CONTROL}/chat/${action}`, { method: 'POST' });
  const text = await res.text();
  if (!res.ok || !['started', 'stopped'].includes(text)) throw new Error(`control ${action}: ${res.status} ${text}`);
}

/** Waits until /readyz says the edge follows chat-service again. */
export async function ready(ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await fetch(`${URL}/readyz`).catch(() => null);
    if (res?.ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('edge not ready');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
