/** `routes[0].service`-style path for error messages. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += (out === '' ? '' : '.') + String(key);
  }
  return out === '' ? '(top level)' : out;
}
