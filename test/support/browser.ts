import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's headless Chromium, driven by playwright-core, for the tests that
 * load a page as a user would. Without it those tests are skipped, loudly;
 * under CI (`CI=true`) they run and fail on the missing binary instead.
 */

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];

/** Whether to skip `what` (a file's browser tests): true, with a warning, only when Chromium is missing outside CI. */
export function skipWithoutChromium(what: string): boolean {
  if (existsSync(CHROMIUM) || process.env.CI === 'true') return false;
  console.warn(`\n*** ${what} SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it, and under CI=true this test fails instead) ***\n`);
  return true;
}

/** Launches headless Chromium; throws, naming the package, when it is not installed (what CI=true turns a skip into). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: .ci/run installs the chromium package`);
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}
