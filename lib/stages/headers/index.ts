import { defineStage } from '../define.ts';
import { headerRules } from './headers.ts';
import { headersOptions } from './schema.ts';

export { headerRules } from './headers.ts';
export type { HeadersOptions, HeaderRules } from './schema.ts';

/** `headers` on a service or route: set, add and remove request and response headers. */
export const headersStage = defineStage({
  name: 'headers',
  options: headersOptions,
  service: true,
  build: (options) => headerRules(options),
});
