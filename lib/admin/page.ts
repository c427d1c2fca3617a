import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { GatewayMetrics, RouteInfo } from '../observe/metrics.ts';
import { DURATION_BUCKETS } from '../observe/request-metrics.ts';
import type { HealthReport } from '../upstream/health-view.ts';
import { SERIES_SECONDS, summarize, type SeriesView, type SeriesWindow } from './series.ts';
import type { AdminAnswer, AdminHandler, AdminRequest } from './types.ts';

/** What `GET /api/overview` answers: the routes with their stages, and the health view. */
export interface Overview {
  routes: readonly RouteInfo[];
  health: HealthReport;
  /** How many worker threads the numbers add up (absent: one gateway). */
  workers?: number;
}

/** What `GET /api/series?seconds=N` answers: per route, one value per second, oldest first. */
export interface SeriesAnswer {
  seconds: number;
  routes: Record<string, SeriesView>;
}

/** Where the admin page's data comes from: one gateway, or a pool of workers adding theirs up. */
export interface AdminPageData {
  overview(): Overview | Promise<Overview>;
  /** Per-route windows of the last `seconds` (see `seriesWindows`). */
  windows(seconds: number): Record<string, SeriesWindow> | Promise<Record<string, SeriesWindow>>;
}

/** What a gateway offers the page (a `Gateway` has both). */
export interface PageGateway {
  readonly metrics: GatewayMetrics;
  health(): HealthReport;
}

/** The seconds the page plots unless `?seconds=` says otherwise. */
const DEFAULT_SECONDS = 300; // 5 min

/** lib/admin/page.ts in a clone, dist/admin/page.js in the package: page.html is in lib/admin/ of either root (package.json "files" ships it). */
const PAGE_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'admin', 'page.html');
let pageHtml: string | null = null;

/** A gateway's routes and health, and its routes' series windows up to clock time `now()`. */
export function gatewayPageData(gateway: PageGateway, now: () => number = () => performance.now()): AdminPageData {
  return {
    overview: () => ({ routes: gateway.metrics.catalog.routes, health: gateway.health() }),
    windows: (seconds) => seriesWindows(gateway.metrics, seconds, now()),
  };
}

/** Every route's window of the last `seconds` up to `nowMs` (what a worker sends the main thread). */
export function seriesWindows(metrics: GatewayMetrics, seconds: number, nowMs: number): Record<string, SeriesWindow> {
  const out: Record<string, SeriesWindow> = {};
  for (const [route, stats] of metrics.routeStats) out[route] = stats.series.window(nowMs, seconds);
  return out;
}

/**
 * The admin page's handlers for the admin listener: `GET /` (the page, which
 * draws its own SVG plots: no script from anywhere else), `GET
 * /api/overview` and `GET /api/series?seconds=N` (N up to 600, default 300).
 * Pass a gateway, or an `AdminPageData` (a worker pool is one). Each
 * handler answers other methods than GET and HEAD `405` with `Allow: GET,
 * HEAD`, and sets `cache-control: no-store`, wherever it is mounted (the
 * admin listener does both itself too; the body of a HEAD is the server's
 * to leave out).
 */
export function adminPageRoutes(source: PageGateway | AdminPageData): Record<string, AdminHandler> {
  const data = 'windows' in source ? source : gatewayPageData(source);
  return {
    '/': getOnly(() => {
      pageHtml ??= readFileSync(PAGE_FILE, 'utf8');
      return { status: 200, contentType: 'text/html; charset=utf-8', body: pageHtml, headers: PAGE_HEADERS };
    }),
    '/api/overview': getOnly(async () => json(await data.overview())),
    '/api/series': getOnly(async (req) => {
      const seconds = secondsOf(req.query);
      const windows = await data.windows(seconds);
      const routes: Record<string, SeriesView> = {};
      for (const [route, w] of Object.entries(windows)) routes[route] = summarize(w, DURATION_BUCKETS);
      return json({ seconds, routes } satisfies SeriesAnswer);
    }),
  };
}

// Live numbers: never cached. The page runs its own inline script and fetches only its own origin.
const NO_STORE = { 'cache-control': 'no-store' };
const PAGE_HEADERS = {
  ...NO_STORE,
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'",
  'x-content-type-options': 'nosniff',
};
/** What the admin listener answers a method a path does not take (lib/admin/listener.ts). */
const NOT_ALLOWED: AdminAnswer = {
  status: 405, contentType: 'application/json', body: '{"error":"method not allowed"}', headers: { ...NO_STORE, allow: 'GET, HEAD' },
};

/** `handler` for GET and HEAD; any other method is 405. */
function getOnly(handler: AdminHandler): AdminHandler {
  return function pageHandler(req: AdminRequest) {
    return req.method === 'GET' || req.method === 'HEAD' ? handler(req) : NOT_ALLOWED;
  };
}

function json(value: unknown): AdminAnswer {
  return { status: 200, contentType: 'application/json', body: JSON.stringify(value), headers: NO_STORE };
}

function secondsOf(query: string): number {
  const raw = new URLSearchParams(query).get('seconds');
  const n = raw === null ? DEFAULT_SECONDS : Number(raw);
  return Number.isFinite(n) && n >= 1 ? Math.min(SERIES_SECONDS, Math.floor(n)) : DEFAULT_SECONDS;
}
