/**
 * The admin listener's handlers: one per path, off the public routes
 * (`/metrics`, `/health`, `/ready`, `/reload`, the admin page and its data).
 */
export interface AdminRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** The query string without `?` ('' when none). */
  query: string;
}

export interface AdminAnswer {
  status: number;
  contentType: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

export type AdminHandler = (req: AdminRequest) => AdminAnswer | Promise<AdminAnswer>;
