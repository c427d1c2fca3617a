import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { websocketDefaults, websocketLimits } from '../../lib/server/websocket-options.ts';

describe('websocket options', () => {
  it('take their defaults from `websocket: true`', () => {
    expect(websocketLimits(true)).toEqual({
      maxMessageSize: websocketDefaults.maxMessageSize, maxConnections: 10_000, idleTimeoutMs: 300_000,
      connectTimeoutMs: 10_000, highWaterMark: 1024 * 1024, maxBuffered: 8 * 1024 * 1024, stallTimeoutMs: 30_000,
    });
  });

  it('turn idleTimeout and stallTimeout off with false', () => {
    const l = websocketLimits({ idleTimeout: false, stallTimeout: false });
    expect([l.idleTimeoutMs, l.stallTimeoutMs]).toEqual([0, 0]);
  });

  it('refuse maxBuffered at or below highWaterMark with a TypeError', () => {
    expect(() => websocketLimits({ highWaterMark: 4096, maxBuffered: 4096 }, 'route chat')).toThrow(TypeError);
  });

  it('are validated in YAML with the key path', () => {
    const yaml = (route: string): string => `
services: { chat: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /chat, service: chat, ${route} }
`;
    expect(() => parseConfig(yaml('websocket: { maxMesageSize: 10 }'), 'x.yaml', {})).toThrow(/routes\[0\]\.websocket/);
    expect(() => parseConfig(yaml('streamIdleTimeout: soon'), 'x.yaml', {})).toThrow(/routes\[0\]\.streamIdleTimeout/);
    expect(parseConfig(yaml('websocket: { idleTimeout: 30s }, streamIdleTimeout: 2m'), 'x.yaml', {}).routes[0]!.websocket).toEqual({ idleTimeout: '30s' });
  });
});
