import { request } from 'undici';

/** A whole response, read: what the policy tests assert on. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * GET `url` and read the whole answer. Every request must finish: a hang
 * fails it through undici's timeouts instead of stalling the run.
 */
export async function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
  const res = await request(url, { headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** The `{"error":{…}}` body the gateway answers errors with. */
export function errorBody(a: Answer): { code: string; message: string } {
  return (JSON.parse(a.body) as { error: { code: string; message: string } }).error;
}
