import { defined } from '../../config/defined.ts';
import { defineStage } from '../define.ts';
import { HAS_ZSTD } from './compressed-body.ts';
import { compression } from './compression.ts';
import { compressionOptions } from './schema.ts';

export { compression, type CompressionOptions } from './compression.ts';
export { negotiate, type Encoding } from './negotiate.ts';
export { HAS_ZSTD } from './compressed-body.ts';

/**
 * `compression` on a route (or service): gzip/brotli (zstd where the
 * runtime has it) on the way out. Before the cache in the default order,
 * so the cache holds the identity body and each client gets its coding.
 */
export const compressionStage = defineStage({
  name: 'compression',
  options: compressionOptions,
  service: true,
  build(options, ctx) {
    const o = options === true ? {} : defined(options);
    if (o.encodings?.includes('zstd') === true && !HAS_ZSTD) {
      ctx.logger.warn({ route: ctx.routeName }, `compression: this Node (${process.version}) has no zstd in node:zlib; offering ${o.encodings.filter((e) => e !== 'zstd').join(', ') || 'nothing'}`);
    }
    return compression(o);
  },
});
