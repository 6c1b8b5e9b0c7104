// Waits until the service's MySQL and Redis accept TCP connections, then exits 0.
// Gives up after WAIT_TIMEOUT_SECONDS and exits 1 naming the unreachable store, so a broken data
// server shows up as a failed init container instead of a pod that waits forever.
'use strict';
const net = require('net');

const timeoutMs = Number(process.env.WAIT_TIMEOUT_SECONDS || 120) * 1000;
const intervalMs = Number(process.env.WAIT_INTERVAL_MS || 2000);
const deadline = Date.now() + timeoutMs;
const targets = [
  ['mysql', process.env.MYSQL_HOST, Number(process.env.MYSQL_PORT)],
  ['redis', process.env.REDIS_HOST, Number(process.env.REDIS_PORT)],
];

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(Math.min(intervalMs, 3000));
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

(async () => {
  for (const [engine, host, port] of targets) {
    if (!host || !port) {
      console.error(`wait-for-database: ${engine} host or port missing from the environment`);
      process.exit(2);
    }
    while (!(await reachable(host, port))) {
      if (Date.now() >= deadline) {
        console.error(`wait-for-database: ${engine} ${host}:${port} unreachable after ${timeoutMs / 1000}s`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    console.log(`wait-for-database: ${engine} ${host}:${port} reachable`);
  }
})();
