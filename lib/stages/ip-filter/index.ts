import type { RouteContext } from '../../config/build-routes.ts';
import { defined } from '../../config/defined.ts';
import type { Policy } from '../../types.ts';
import { defineStage, type StageContext } from '../define.ts';
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
 * there, top-level lists and address resolution included. Its 403 goes
 * out through the route's cors when cors runs after it (the default
 * order), as the router's 405 does: a page reads the status, not a CORS
 * failure (Kong runs cors before ip-restriction; Envoy's cors filter,
 * listed first, decorates the RBAC filter's local reply).
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
    return ipFilter({ ...lists, trustedProxies, refusal: corsAfter(ctx) });
  },
});

/** The route's cors policy when its pipeline runs cors after ipFilter (a context that builds routes from a config tells). */
function corsAfter(ctx: StageContext): Policy | null {
  const { pipeline, stage } = ctx as StageContext & Partial<Pick<RouteContext, 'pipeline' | 'stage'>>;
  if (pipeline === undefined || stage === undefined) return null;
  return pipeline.indexOf('cors') > pipeline.indexOf('ipFilter') ? stage('cors') : null;
}
