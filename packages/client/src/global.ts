/**
 * Entry of the `<script>` bundle (`dist/herald.min.js`): defines the global `Herald` (the client
 * class) with `Herald.HeraldError` and `Herald.Subscription` attached.
 */
import { HeraldError } from '@herald/protocol';
import { Herald, Subscription } from './index.js';

(globalThis as { Herald?: unknown }).Herald = Object.assign(Herald, { HeraldError, Subscription });
