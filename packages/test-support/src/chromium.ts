/**
 * Headless Chromium for browser tests: Debian's `chromium` (or `CHROMIUM_PATH`), driven by
 * playwright-core, which is loaded only when a browser is launched.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** Whether Chromium is installed (tests skip without it, except under CI=true). */
export const chromiumPresent = existsSync(CHROMIUM);

export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(executablePath: string = CHROMIUM): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath, args: [...CHROMIUM_ARGS] });
}
