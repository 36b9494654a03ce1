/**
 * A Herald server with its demos mounted, started the way `herald serve` does it (`prepareDemos`,
 * then `HeraldServer` with the `demos` option), on an ephemeral loopback port.
 */
import {
  HeraldServer,
  prepareDemos,
  resolveConfig,
  type ConfigInput,
  type DemoOptions,
  type Demos,
  type HeraldConfig,
} from '@herald/server';

export interface DemoServer {
  server: HeraldServer;
  demos: Demos | undefined;
  config: HeraldConfig;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startDemoServer(input: ConfigInput = {}, opts: DemoOptions = {}): Promise<DemoServer> {
  const { config } = resolveConfig({
    host: '127.0.0.1',
    port: 0,
    logLevel: 'silent',
    shutdown: { timeout: '2s', reconnectJitter: 0 },
    ...input,
  });
  const demos = await prepareDemos(config, opts);
  const server = new HeraldServer(config, { demos });
  const { port } = await server.listen();
  return { server, demos, config, url: `http://127.0.0.1:${port}`, port, close: () => server.close() };
}
