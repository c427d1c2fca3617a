import { z } from 'zod';
import { isCidr } from './cidr.ts';

/** An IPv4 or IPv6 address or CIDR (`10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104`). */
export const cidr = z.string().refine(isCidr, 'expected an IP address or CIDR like 10.0.0.0/8 or 2001:db8::/32');

/** `ipFilter:` on a route, and at the top level for every route (a route's keys replace the top level's). */
export const ipFilterOptions = z.strictObject({
  allow: z.array(cidr).optional(),
  deny: z.array(cidr).optional(),
});
export type IpFilterConfig = z.output<typeof ipFilterOptions>;

/** The top-level `trustedProxies:` list: peers whose `X-Forwarded-For` is believed. */
export const trustedProxiesOption = z.array(cidr);
