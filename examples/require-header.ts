// A stage of your own, usable by name from YAML: `requireHeader: { name: x-tenant }`.
import { throwError } from 'rxjs';
import { z } from 'zod';
import { BadRequestError, defineStage } from '../lib/index.ts';

export const requireHeader = defineStage({
  name: 'requireHeader',
  options: z.strictObject({ name: z.string().min(1).toLowerCase() }),
  build: ({ name }) => (next) => (req) =>
    req.headers[name] === undefined
      ? throwError(() => new BadRequestError(`this route needs a ${name} header`))
      : next(req),
});
