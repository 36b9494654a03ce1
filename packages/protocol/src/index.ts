export * from './codes.js';
export * from './error.js';
export * from './channel.js';
export * from './cursor.js';
export * from './frames.js';
