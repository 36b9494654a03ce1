/**
 * `@herald/test-support/server`: a Herald server to test against — in this process on an ephemeral
 * port (`startServer`, harness.ts), or as a child process of the built CLI that a test can SIGKILL
 * (`startChildNode`, child-node.ts) — and the clients that talk to it: the server API (`api`) and a
 * raw-protocol WebSocket client (`WsClient`).
 */
export {
  API_KEY,
  api,
  connectH2,
  refusedUpgrade,
  startServer,
  testConfig,
  WsClient,
  type DeepPartial,
  type Frame,
  type Refused,
  type TestConfigInput,
  type TestServer,
  type TestServerOptions,
} from './harness.js';
export { CLI, runCli, startChildNode, type ChildNode } from './child-node.js';
