import { startUpstream, type TestUpstream } from './servers.ts';

/** An upstream that holds each GET until `release()` (a POST is answered once its body is in); `arrived` resolves when the first request is in. */
export interface HoldingUpstream extends TestUpstream {
  arrived: Promise<void>;
  release(): void;
}

/** Starts a `HoldingUpstream`: GETs answer 'slow, but complete' once released, POSTs `received <n> bytes`. */
export async function holdingUpstream(): Promise<HoldingUpstream> {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  let arrived: () => void = () => {};
  const arrival = new Promise<void>((resolve) => { arrived = resolve; });
  const up = await startUpstream((req, res) => {
    arrived();
    let bytes = 0;
    req.on('data', (c: Buffer) => { bytes += c.length; });
    req.on('end', () => {
      if (req.method === 'POST') res.end(`received ${bytes} bytes`);
    });
    if (req.method === 'POST') return;
    void released.then(() => res.end('slow, but complete'));
  });
  return Object.assign(up, { arrived: arrival, release });
}
