// Runs the Ticker example on its own, against a running Herald (see ../README.md):
//   node examples/ticker/server.mjs --herald http://localhost:8080 --api-key KEY [--port 3000]
import { serveExample } from '../shared/serve-example.mjs';

await serveExample(import.meta.url);
