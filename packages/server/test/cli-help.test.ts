/** `herald --help`, `herald <command> --help`, `herald help <command>`: exit 0, usage and examples. */
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/help.js';
import { assertBuilt, runHerald } from './support/cli.js';

const commands = Object.keys(COMMANDS);

beforeAll(() => assertBuilt());

describe('herald help', () => {
  it('lists every command, with examples', async () => {
    for (const args of [[], ['help'], ['--help'], ['-h']]) {
      const r = await runHerald(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr).toBe('');
      for (const c of commands) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
      expect(r.stdout).toContain('Examples:');
    }
  });

  it.each(commands)('herald %s --help, and herald help of it: usage, options and examples, exit 0', async (command) => {
    const flags =
      command === 'help'
        ? []
        : [
            [command, '--help'],
            [command, '-h'],
          ];
    for (const args of [...flags, ['help', command]]) {
      const r = await runHerald(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`herald ${command}: `);
      expect(r.stdout).toContain('Usage:');
      const examples = r.stdout.slice(r.stdout.indexOf('\nExamples:\n'));
      expect(examples).toContain(`herald ${command}`);
    }
  });

  it('takes --help after other arguments, and not after --', async () => {
    const r = await runHerald(['publish', 'chat.room1', '--url', 'http://x', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('herald publish: ');
    const s = await runHerald(['subscribe', '--bogus', '--help']);
    expect(s.code).toBe(0);
    const t = await runHerald(['publish', '--', '--help']);
    expect(t.code).toBe(2);
  });

  it('an unknown command or help topic is a usage error: one line, exit 2', async () => {
    const r = await runHerald(['publsh', 'chat.room1', '{}']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('herald: unknown command "publsh" (herald help lists the commands)\n');
    const h = await runHerald(['help', 'nope']);
    expect(h.code).toBe(2);
    expect(h.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('an unknown option names itself in one line, exit 2', async () => {
    for (const command of ['publish', 'subscribe', 'history', 'channels', 'presence', 'info', 'token']) {
      const r = await runHerald([command, '--bogus']);
      expect(r.code, command).toBe(2);
      expect(r.stderr).toBe(`herald ${command}: unknown option --bogus (herald ${command} --help for usage)\n`);
    }
  });
});
