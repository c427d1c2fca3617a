import { defineStage } from '../define.ts';
import { bodyLimit } from './body-limit.ts';
import { maxBodySizeOptions } from './schema.ts';

export { bodyLimit, type BodyLimitOptions } from './body-limit.ts';

/** `maxBodySize` (route over service): 413 for request bodies over the limit. */
export const maxBodySizeStage = defineStage({
  name: 'maxBodySize',
  options: maxBodySizeOptions,
  service: true,
  build: (maxBytes) => bodyLimit({ maxBytes }),
});
