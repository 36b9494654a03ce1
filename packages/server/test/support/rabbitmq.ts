/**
 * Test support for publishing from RabbitMQ: whether the broker is there, unique names, a publisher,
 * cleanup, and closing a connection from the broker's side (`rabbitmqctl close_connection`, or the
 * management API when it is on).
 *
 * Skip rule: when RabbitMQ at HERALD_TEST_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672) does
 * not answer, the tests are skipped with a note on the console. With CI=true they run and fail.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connect, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { CI, findProgram } from '@herald/test-support';

export const AMQP_URL = process.env['HERALD_TEST_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
const MANAGEMENT_URL = process.env['HERALD_TEST_AMQP_MANAGEMENT_URL'] ?? 'http://127.0.0.1:15672';
const run = promisify(execFile);

async function probe(): Promise<string | undefined> {
  try {
    const c = await connect(AMQP_URL, { timeout: 2000 });
    await c.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const failure = await probe();
/** Skip the RabbitMQ tests: the broker is absent and this is not CI. */
export const skipAmqp = failure !== undefined && !CI;
if (skipAmqp) {
  console.warn(
    `[herald] RabbitMQ tests skipped: no broker at ${AMQP_URL.replace(/:[^:@/]*@/, ':***@')} (${failure ?? ''}). ` +
      'Start one (rabbitmq-server) or set HERALD_TEST_AMQP_URL; with CI=true they run and fail.',
  );
}

async function managementUp(): Promise<boolean> {
  try {
    const res = await fetch(`${MANAGEMENT_URL}/api/overview`, {
      headers: managementAuth(),
      signal: AbortSignal.timeout(1000),
    });
    return res.status === 200;
  } catch {
    return false;
  }
}

function managementAuth(): Record<string, string> {
  const u = new URL(AMQP_URL);
  const user = decodeURIComponent(u.username || 'guest');
  const pass = decodeURIComponent(u.password || 'guest');
  return { Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

const rabbitmqctl = findProgram('rabbitmqctl');
const management = failure === undefined ? await managementUp() : false;
/** The broker can be told to close a connection (management API, or rabbitmqctl on this machine). */
export const canCloseConnections = management || rabbitmqctl !== undefined;
/** Skip the broker-side close: neither way is there, and this is not CI (under CI it runs and fails). */
export const skipBrokerClose = !skipAmqp && !canCloseConnections && !CI;
if (skipBrokerClose) {
  console.warn(
    '[herald] RabbitMQ "connection closed by the broker" test skipped: neither the management API ' +
      `(${MANAGEMENT_URL}, rabbitmq-plugins enable rabbitmq_management) nor rabbitmqctl is available.`,
  );
}

/** Names no other test run uses: `herald-test-<hex>-<what>`. */
export function uniqueName(what: string): string {
  return `herald-test-${randomBytes(4).toString('hex')}-${what}`;
}

/** A publisher with publisher confirms. */
export class AmqpPublisher {
  private constructor(
    readonly model: ChannelModel,
    readonly channel: ConfirmChannel,
  ) {}

  static async open(): Promise<AmqpPublisher> {
    const model = await connect(AMQP_URL);
    const channel = await model.createConfirmChannel();
    return new AmqpPublisher(model, channel);
  }

  /** Publishes and waits for the broker's confirm. */
  async publish(
    exchange: string,
    routingKey: string,
    body: string | Buffer,
    options: Options.Publish = {},
  ): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.channel.publish(exchange, routingKey, Buffer.isBuffer(body) ? body : Buffer.from(body), options, (err) =>
        err !== null && err !== undefined ? reject(new Error(String(err))) : resolve(),
      );
    });
  }

  /** Publishes many, a window of them unconfirmed at a time, and waits for every confirm. */
  async publishMany(
    count: number,
    make: (i: number) => { exchange: string; routingKey: string; body: string; options?: Options.Publish },
  ): Promise<void> {
    for (let i = 0; i < count; i++) {
      const m = make(i);
      const ok = this.channel.publish(m.exchange, m.routingKey, Buffer.from(m.body), m.options ?? {});
      if (!ok) await new Promise((r) => this.channel.once('drain', r));
      if (i % 500 === 499) await this.channel.waitForConfirms();
    }
    await this.channel.waitForConfirms();
  }

  /** Messages ready in `queue` (not delivered to a consumer). */
  async ready(queue: string): Promise<number> {
    const ch = await this.model.createChannel();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close();
    }
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => undefined);
  }
}

/** Deletes queues and exchanges (each on its own channel: a missing one closes the channel). */
export async function deleteAmqp(names: { queues?: string[]; exchanges?: string[] }): Promise<void> {
  const model = await connect(AMQP_URL);
  try {
    for (const q of names.queues ?? []) {
      const ch = await model.createChannel();
      ch.on('error', () => undefined);
      await ch.deleteQueue(q).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
    for (const e of names.exchanges ?? []) {
      const ch = await model.createChannel();
      ch.on('error', () => undefined);
      await ch.deleteExchange(e).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  } finally {
    await model.close().catch(() => undefined);
  }
}

/**
 * Closes, from the broker, every connection whose client-provided name (`connection_name`) starts
 * with `namePrefix`, as an operator or a broker in trouble does; returns how many.
 */
export async function closeConnectionsNamed(namePrefix: string): Promise<number> {
  if (management) {
    const res = await fetch(`${MANAGEMENT_URL}/api/connections`, { headers: managementAuth() });
    const list = (await res.json()) as { name: string; client_properties?: { connection_name?: string } }[];
    const hits = list.filter((c) => c.client_properties?.connection_name?.startsWith(namePrefix) === true);
    for (const c of hits) {
      await fetch(`${MANAGEMENT_URL}/api/connections/${encodeURIComponent(c.name)}`, {
        method: 'DELETE',
        headers: { ...managementAuth(), 'X-Reason': 'herald test: closed by the broker' },
      });
    }
    return hits.length;
  }
  if (rabbitmqctl === undefined) throw new Error('neither the management API nor rabbitmqctl is available');
  const { stdout } = await run(rabbitmqctl, ['list_connections', 'pid', 'client_properties', '-q'], {
    timeout: 30_000,
  });
  // Lines of `<pid>\t[{"connection_name","..."},...]`.
  const needle = `{"connection_name","${namePrefix}`;
  const hits = stdout
    .split('\n')
    .filter((line) => line.includes(needle))
    .map((line) => line.split('\t')[0] ?? '');
  for (const pid of hits) {
    await run(rabbitmqctl, ['close_connection', pid, 'herald test: closed by the broker'], { timeout: 30_000 });
  }
  return hits.length;
}
