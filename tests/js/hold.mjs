// Holds one socket.io-client connection open until killed; prints
// "connected" once connected, or "refused <message>". Used by Rust tests that
// need a live socket while they act on the processes behind it.
// Usage: node hold.mjs URL NAMESPACE TOKEN
import { io } from 'socket.io-client';

const [url, namespace, token] = process.argv.slice(2);
const socket = io(url + namespace, { auth: { token }, reconnection: false, transports: ['websocket'] });
socket.on('connect', () => console.log('connected'));
socket.on('connect_error', (e) => {
  console.log(`refused ${e.message}`);
  process.exit(1);
});
socket.on('disconnect', (reason) => console.log(`disconnected ${reason}`));
