import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../lib/errors.ts';
import { canonicalAddress, CidrList, parseAddress } from '../../lib/stages/ip-filter/cidr.ts';
import { clientAddress, hostOf } from '../../lib/stages/ip-filter/client-address.ts';
import { ipFilter } from '../../lib/stages/ip-filter/ip-filter.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

const OK: GatewayResponse = { status: 200, headers: [], body: null };

function request(ip: string, xff?: string): GatewayRequest {
  return gatewayRequest({ id: 'r', headers: xff === undefined ? {} : { 'x-forwarded-for': xff }, remoteAddress: ip });
}

const call = callNow;

describe('CidrList', () => {
  it('matches IPv4 networks, single hosts and /0', () => {
    const list = new CidrList(['10.0.0.0/8', '192.168.1.7', '172.16.0.0/12']);
    expect(list.has('10.255.1.2')).toBe(true);
    expect(list.has('11.0.0.1')).toBe(false);
    expect(list.has('192.168.1.7')).toBe(true);
    expect(list.has('192.168.1.8')).toBe(false);
    expect(list.has('172.31.255.255')).toBe(true);
    expect(list.has('172.32.0.0')).toBe(false);
    expect(new CidrList(['0.0.0.0/0']).has('203.0.113.9')).toBe(true);
    expect(new CidrList(['0.0.0.0/0']).has('2001:db8::1')).toBe(false);
  });

  it('matches IPv6 networks across word boundaries', () => {
    const list = new CidrList(['2001:db8::/32', 'fe80::/10', '2001:db8:1:2:3:4:5:0/127', '::1']);
    expect(list.has('2001:db8:ffff::1')).toBe(true);
    expect(list.has('2001:db9::1')).toBe(false);
    expect(list.has('fe80::1%eth0')).toBe(true);
    expect(list.has('febf::1')).toBe(true);
    expect(list.has('fec0::1')).toBe(false);
    expect(list.has('::1')).toBe(true);
    expect(list.has('0:0:0:0:0:0:0:1')).toBe(true);
    expect(list.has('::2')).toBe(false);
    expect(new CidrList(['2001:db9::/32', '2001:db8:1:2:3:4:5:0/127']).has('2001:db8:1:2:3:4:5:1')).toBe(true);
  });

  it('treats IPv4-mapped IPv6 addresses and CIDRs as their IPv4 addresses', () => {
    const v4 = new CidrList(['10.0.0.0/8']);
    expect(v4.has('::ffff:10.1.2.3')).toBe(true);
    expect(v4.has('0000:0000:0000:0000:0000:ffff:0a01:0203')).toBe(true);
    expect(v4.has('::ffff:11.1.2.3')).toBe(false);
    const mapped = new CidrList(['::ffff:192.168.0.0/112']);
    expect(mapped.has('192.168.44.1')).toBe(true);
    expect(mapped.has('192.169.0.1')).toBe(false);
  });

  it('keeps IPv4 clients out of IPv6 networks such as ::/0, as nginx does (shrunk counter-example)', () => {
    expect(new CidrList(['::/0']).has('0.0.0.0')).toBe(false);
    expect(new CidrList(['::/0']).has('::ffff:10.0.0.1')).toBe(false);
    expect(new CidrList(['::/0']).has('2001:db8::1')).toBe(true);
    const wide = new CidrList(['::ffff:10.0.0.0/80']);
    expect(wide.has('10.0.0.1')).toBe(false);
    expect(wide.has('::abcd:0:0')).toBe(true);
  });

  it('never matches what is not an address', () => {
    const list = new CidrList(['0.0.0.0/0', '::/0']);
    for (const bad of ['', 'unknown', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4:80', 'fe80:::1', '[::1]']) {
      expect(list.has(bad), bad).toBe(false);
    }
  });

  it('refuses a bad entry when built, naming it', () => {
    expect(() => new CidrList(['10.0.0.0/8', '10.0.0.0/33'], 'ipFilter.allow')).toThrow(/ipFilter\.allow\[1\]/);
    expect(() => new CidrList(['example.com'])).toThrow(TypeError);
  });

  it('parses dotted IPv4 into one word, IPv6 into four', () => {
    const w = new Uint32Array(4);
    expect(parseAddress('192.0.2.1', w)).toBe(4);
    expect(w[0]).toBe(0xc0000201);
    expect(parseAddress('2001:db8::ff', w)).toBe(6);
    expect([...w]).toEqual([0x20010db8, 0, 0, 0xff]);
  });

  it('writes addresses canonically', () => {
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalAddress('nope')).toBeNull();
  });
});

describe('the client address behind trusted proxies', () => {
  const trusted = new CidrList(['127.0.0.1/32', '10.0.0.0/8']);

  it('is the peer when the peer is not trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('203.0.113.5', '1.1.1.1', trusted)).toBe('203.0.113.5');
  });

  it('is the peer when a trusted peer sends no X-Forwarded-For', () => {
    expect(clientAddress('127.0.0.1', undefined, trusted)).toBe('127.0.0.1');
  });

  it('is the first untrusted hop from the right, skipping trusted ones', () => {
    expect(clientAddress('127.0.0.1', '6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2', trusted)).toBe('198.51.100.7');
  });

  it('never believes entries left of the first untrusted hop (a client forging its chain)', () => {
    expect(clientAddress('127.0.0.1', '10.9.9.9, 198.51.100.7', trusted)).toBe('198.51.100.7');
  });

  it('is the leftmost hop when every hop is trusted', () => {
    expect(clientAddress('127.0.0.1', '10.0.0.3, 10.0.0.2', trusted)).toBe('10.0.0.3');
  });

  it('stops at a hop that is not an address, at the trusted hop right of it', () => {
    expect(clientAddress('127.0.0.1', '198.51.100.7, unknown, 10.0.0.2', trusted)).toBe('10.0.0.2');
    expect(clientAddress('127.0.0.1', 'garbage', trusted)).toBe('127.0.0.1');
  });

  it('reads IPv6 hops, ports and brackets, and normalises mapped addresses', () => {
    expect(clientAddress('::ffff:127.0.0.1', '[2001:db8::7]:4431, ::ffff:10.0.0.9', trusted)).toBe('2001:db8::7');
    expect(clientAddress('127.0.0.1', '198.51.100.7:5555', trusted)).toBe('198.51.100.7');
    expect(clientAddress('127.0.0.1', '::ffff:198.51.100.7', trusted)).toBe('198.51.100.7');
    expect(hostOf('2001:db8::1')).toBe('2001:db8::1');
  });

  it('skips empty entries (repeated headers joined)', () => {
    expect(clientAddress('127.0.0.1', '198.51.100.7, , 10.0.0.1,', trusted)).toBe('198.51.100.7');
  });
});

describe('ipFilter', () => {
  const next: Handler = () => of(OK);

  it('is the identity with nothing configured', () => {
    expect(ipFilter({})(next)).toBe(next);
  });

  it('answers 403 IP_FORBIDDEN to a denied address, even when allowed too (deny wins)', () => {
    const h = ipFilter({ allow: ['10.0.0.0/8'], deny: ['10.6.6.6'] })(next);
    const err = call(h, request('10.6.6.6'));
    expect(isGatewayError(err) && err.status === 403 && err.code === 'IP_FORBIDDEN').toBe(true);
    expect(call(h, request('10.6.6.7'))).toBe(OK);
    expect(isGatewayError(call(h, request('11.0.0.1')))).toBe(true);
  });

  it('filters on the address behind trusted proxies and leaves it in req.clientAddress', () => {
    const h = ipFilter({ deny: ['198.51.100.0/24'], trustedProxies: ['127.0.0.1'] })(next);
    const req = request('127.0.0.1', '198.51.100.7');
    expect(isGatewayError(call(h, req))).toBe(true);
    expect(req.clientAddress).toBe('198.51.100.7');
    const untrusted = request('192.0.2.1', '198.51.100.7');
    expect(call(h, untrusted)).toBe(OK);
    expect(untrusted.clientAddress).toBe('192.0.2.1');
  });

  it('keeps no stale verdict when addresses alternate', () => {
    const h = ipFilter({ allow: ['::1', '127.0.0.1'] })(next);
    for (let i = 0; i < 3; i++) {
      expect(call(h, request('::ffff:127.0.0.1'))).toBe(OK);
      expect(isGatewayError(call(h, request('127.0.0.2')))).toBe(true);
      expect(call(h, request('::1'))).toBe(OK);
    }
  });
});
