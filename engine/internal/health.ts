/** The HTTP health endpoint of an engine task (ECS / load balancer health checks). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running health endpoint. */
export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /health`: 200 with `status()`'s body while it reports `healthy`, 503 otherwise;
 * everything else is 404.
 *
 * @example
 * const health = await startHealthServer(8080, '0.0.0.0', () => ({ healthy: true, body: { state: 'running' } }));
 */
export async function startHealthServer(
  port: number,
  host: string,
  status: () => { healthy: boolean; body: Record<string, unknown> },
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/health') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found; try GET /health"}');
      return;
    }
    const { healthy, body } = status();
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
