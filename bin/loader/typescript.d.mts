// Types for typescript.mjs (the tests import it; as with register.d.mts, tsc then does not compile the loader into dist/).
/** Whether rxgate's loader runs `url` as TypeScript. */
export function isTypeScript(url: string): boolean;
