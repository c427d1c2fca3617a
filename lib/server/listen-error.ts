/** A listener (public, redirect or admin) could not bind its address: the CLI prints the message alone, without a stack. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}
