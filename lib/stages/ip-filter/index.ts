import { defined } from '../../config/defined.ts';
import { defineStage } from '../define.ts';
import { ipFilter } from './ip-filter.ts';
import { ipFilterOptions } from './schema.ts';

export { ipFilter, type IpFilterOptions } from './ip-filter.ts';
export { CidrList, canonicalAddress } from './cidr.ts';
export { ClientAddressResolver, clientAddress } from './client-address.ts';

/**
 * `ipFilter`: runs first on every route. It resolves the client's address
 * (top-level `trustedProxies`) and admits it by the route's `allow`/`deny`
 * lists, each key falling back to the top-level `ipFilter`'s. Off (no cost)
 * when none of the three is set; `ipFilter: false` on a route turns it off
 * there, top-level lists and address resolution included.
 */
export const ipFilterStage = defineStage({
  name: 'ipFilter',
  options: ipFilterOptions,
  onByDefault: true,
  build(own, ctx) {
    const top = ctx.config.ipFilter;
    const lists = { ...(top === undefined ? {} : defined(top)), ...defined(own) };
    const trustedProxies = ctx.config.trustedProxies ?? [];
    if ((lists.allow ?? []).length === 0 && (lists.deny ?? []).length === 0 && trustedProxies.length === 0) return null;
    return ipFilter({ ...lists, trustedProxies });
  },
});
