import { createServer } from 'node:net';

/**
 * Asks the OS for a free TCP port on `host` by binding port 0 and releasing it. Another process
 * may take it before the caller binds it, so callers that spawn a child on it retry on
 * "address in use".
 */
export function findFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error(`could not read a free port on ${host}`))));
    });
  });
}

/** Validates a port option: an integer in 0..65535 (0 = pick a free one). */
export function isValidPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65_535;
}
