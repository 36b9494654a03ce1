/**
 * `POST /api/batch`: many server API commands in one request, so that a backend publishing at a high
 * rate pays for one HTTP request instead of one per command.
 *
 * - The whole envelope is checked before any command runs: an invalid batch applies nothing and
 *   fails once, with 400 `HERALD_ERR_API_BAD_REQUEST` naming the command index.
 * - Then every command is started in order, without waiting for the one before. `Hub.publish` hands
 *   the publication to the engine synchronously, so publications to one channel get increasing
 *   offsets in command order: the memory engine applies each one at once, and the Redis engine sends
 *   each script on the connection of the channel's server (auto-pipelined, or one write per command
 *   on a Cluster), where Redis runs them in the order sent.
 * - Each command gets its own reply, in command order; a failing command gets an `error` reply and
 *   leaves the others alone.
 * - The replies are the single methods' JSON texts joined, never parsed again.
 */
import { HeraldError, type ErrorBody } from '@herald/protocol';

/** The most commands one batch may hold. */
export const MAX_BATCH_COMMANDS = 1000;

/** A method's params: the JSON object that is the body of `POST /api/<method>`. */
export type ApiParams = Record<string, unknown>;
/** A server API method: checks its params, does the work and resolves with the reply's JSON text. */
export type ApiMethod = (params: ApiParams) => Promise<string>;

interface BatchCommand {
  readonly name: string;
  readonly method: ApiMethod;
  readonly params: ApiParams;
}

/**
 * Runs the batch in `body` (`{"commands":[{"<method>":{...params}}, ...]}`) and resolves with
 * `{"replies":[{"<method>":<reply>} or {"error":{code,message}}, ...]}`. Rejects, before running
 * anything, when the envelope is not valid. `errorBody` turns a command's failure into its reply.
 */
export async function runBatch(
  body: ApiParams,
  methodOf: (name: string) => ApiMethod | undefined,
  errorBody: (err: unknown) => ErrorBody,
): Promise<string> {
  const commands = parseCommands(body['commands'], methodOf);
  // `map` calls replyTo for each command in order, and each call runs up to its engine call at once.
  const replies = await Promise.all(commands.map((c) => replyTo(c, errorBody)));
  return `{"replies":[${replies.join(',')}]}`;
}

async function replyTo(c: BatchCommand, errorBody: (err: unknown) => ErrorBody): Promise<string> {
  try {
    // c.name is a known method name (letters only): no escaping needed.
    return `{"${c.name}":${await c.method(c.params)}}`;
  } catch (err) {
    return `{"error":${JSON.stringify(errorBody(err))}}`;
  }
}

function parseCommands(list: unknown, methodOf: (name: string) => ApiMethod | undefined): BatchCommand[] {
  if (!Array.isArray(list)) throw bad(`"commands" must be an array of 1 to ${MAX_BATCH_COMMANDS} commands`);
  if (list.length === 0 || list.length > MAX_BATCH_COMMANDS) {
    throw bad(`"commands" has ${list.length} commands; give 1 to ${MAX_BATCH_COMMANDS}`);
  }
  const commands: BatchCommand[] = [];
  for (let i = 0; i < list.length; i++) {
    const cmd: unknown = list[i];
    if (!isObject(cmd)) throw bad(`commands[${i}] must be an object with one key, the method name`);
    const name = onlyKey(cmd);
    if (name === undefined) throw bad(`commands[${i}] must have exactly one key, the method name`);
    if (name === 'batch') throw bad(`commands[${i}]: a batch cannot contain a batch`);
    const method = methodOf(name);
    if (method === undefined) throw bad(`commands[${i}]: no API method "${name.slice(0, 64)}"`);
    const params = cmd[name];
    if (!isObject(params)) throw bad(`commands[${i}].${name} must be a JSON object (the method's body)`);
    commands.push({ name, method, params });
  }
  return commands;
}

/** The object's key when it has exactly one, else undefined (without listing every key). */
function onlyKey(o: ApiParams): string | undefined {
  let name: string | undefined;
  let count = 0;
  for (const k in o) {
    if (++count > 1) return undefined;
    name = k;
  }
  return name;
}

function isObject(v: unknown): v is ApiParams {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(message: string): HeraldError {
  return new HeraldError('HERALD_ERR_API_BAD_REQUEST', message);
}
