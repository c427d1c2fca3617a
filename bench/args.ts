/** Reads `--name value` from argv; the child servers take a port and an upstream. */
export function argValue(name: string, argv: readonly string[] = process.argv): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function requiredArg(name: string): string {
  const value = argValue(name);
  if (value === undefined || value === '') throw new TypeError(`missing --${name}`);
  return value;
}

export function portArg(): number {
  const port = Number(requiredArg('port'));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TypeError('--port must be 1-65535');
  return port;
}

/** Child servers stop on SIGTERM/SIGINT sent by the harness (by PID). */
export function onStop(stop: () => void): void {
  const handler = (): void => {
    stop();
    process.exit(0);
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
