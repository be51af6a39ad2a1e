import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of PostgreSQL, so a test can take "the database" away from one
 * app and give it back without touching the server other suites share. While cut, it still
 * accepts connections but closes them at once (as a restarting server would), and counts them.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  private attemptsWhileCut = 0;
  private attemptListeners: (() => boolean)[] = [];

  private constructor(
    private readonly server: Server,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Starts a proxy on 127.0.0.1 (any free port) in front of `databaseUrl`'s host and port. */
  static async start(databaseUrl: string): Promise<TcpProxy> {
    const target = new URL(databaseUrl);
    const proxy = new TcpProxy(
      createServer(),
      target.hostname.replace(/^\[|\]$/g, ''),
      Number(target.port || 5432),
    );
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('proxy is not listening');
    url.hostname = '127.0.0.1';
    url.port = String(address.port);
    return url.toString();
  }

  /** Drops every open connection and refuses new ones until `restore()`. */
  cut(): void {
    this.cutOff = true;
    this.attemptsWhileCut = 0;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.cutOff = false;
  }

  /** Resolves once `count` connections were refused since the last `cut()`. */
  refused(count: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.attemptsWhileCut < count) return false;
        resolve();
        return true;
      };
      if (!check()) this.attemptListeners.push(check);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.cutOff) {
      this.attemptsWhileCut++;
      client.destroy();
      this.attemptListeners = this.attemptListeners.filter((check) => !check());
      return;
    }
    const upstream = createConnection(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  }
}
