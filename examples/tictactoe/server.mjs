// Runs the TicTacToe example on its own, against a running Herald (see ../README.md):
//   node examples/tictactoe/server.mjs --herald http://localhost:8080 --api-key KEY --secret SECRET [--port 3000]
// --secret is Herald's auth.hmacSecret: the backend signs the players' connection tokens with it.
import { serveExample } from '../shared/serve-example.mjs';

await serveExample(import.meta.url);
