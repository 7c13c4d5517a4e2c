// Holds one socket.io-client connection open until killed; prints
// "connected" once connected (and, when CONVERSATION is given, joined to it
// with raven's join_conversation), "refused <message>" when the handshake is
// refused, and "new_message <json>" for each message that reaches it. Used
// by Rust tests that need a live socket while they act on the processes
// behind it.
// Usage: node hold.mjs URL NAMESPACE TOKEN [CONVERSATION]
import { io } from 'socket.io-client';

const [url, namespace, token, conversation] = process.argv.slice(2);
const socket = io(url + namespace, { auth: { token }, reconnection: false, transports: ['websocket'] });
socket.on('connect', async () => {
  if (conversation) {
    const ack = await socket.timeout(5000).emitWithAck('join_conversation', { conversation_id: conversation });
    if (!ack?.success) {
      console.log(`join failed ${JSON.stringify(ack)}`);
      process.exit(1);
    }
  }
  console.log('connected');
});
socket.on('connect_error', (e) => {
  console.log(`refused ${e.message}`);
  process.exit(1);
});
socket.on('new_message', (m) => console.log(`new_message ${JSON.stringify(m)}`));
socket.on('disconnect', (reason) => console.log(`disconnected ${reason}`));
