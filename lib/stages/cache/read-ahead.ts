/** 64 MiB: the memory store's default `maxBytes`. */
export const READ_AHEAD_DEFAULT = 64 * 1024 * 1024;

/**
 * Bytes read from upstreams ahead of slow clients by every stored miss of
 * this process (or worker thread) together: the chunks waiting in tees'
 * queues for clients that have not taken them yet. Past `max`, a tee no
 * longer reads ahead: its upstream waits for its client, as every response
 * did before session 13 (nginx bounds the same with `proxy_buffers` in
 * memory and the rest on disk). Without it, N slow clients leading N
 * cacheable URLs held up to N × `maxEntrySize` (review RG, H1).
 *
 * `used` is the gauge `rxgate_cache_read_ahead_bytes`, `refused` the
 * counter `rxgate_cache_read_ahead_refused_total` (a tee that fell back to
 * backpressure because the budget was spent: no silent degradation).
 * `max` is the top-level `cache.maxReadAhead` of the config last built.
 */
export const readAhead = { max: READ_AHEAD_DEFAULT, used: 0, refused: 0 };
