// `node --import ./bin/loader/register.mjs file.ts`, or import it first.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
