import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig } from '../../lib/config/load.ts';
import { parseDuration } from '../../lib/duration.ts';

/**
 * The Dockerfile and the Kubernetes manifests under deploy/, checked without
 * Docker or a cluster: every manifest against the Kubernetes OpenAPI schemas
 * (kubernetes-models: types, required fields, formats — not unknown keys, so
 * the fields that matter are asserted one by one below), and the values that
 * must agree across files (ports, probe paths, the drain deadline against the
 * termination grace period, names and selectors) compared with each other
 * and with deploy/rxgate.yaml.
 */
const root = resolve(import.meta.dirname, '../..');
const deploy = join(root, 'deploy');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: unknown };

const MODELS: Record<string, { new (data: never): { validate(): void } }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

interface Kustomization {
  resources: string[];
  configMapGenerator: Array<{ name: string; files: string[]; options?: { disableNameSuffixHash?: boolean } }>;
  images: Array<{ name: string; newName?: string; newTag?: string }>;
}

const kustomization = parseYaml(read('deploy/kustomization.yaml')) as Kustomization;

function manifestsOf(file: string): Manifest[] {
  const docs = parseAllDocuments(read(`deploy/${file}`));
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS() as Manifest);
}

/** What `kubectl apply -k deploy/` applies: the listed resources plus the generated ConfigMap. */
const applied: Manifest[] = [
  ...kustomization.resources.flatMap(manifestsOf),
  ...kustomization.configMapGenerator.map((g): Manifest => ({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name },
    data: Object.fromEntries(g.files.map((f) => [f, read(`deploy/${f}`)])),
  })),
];

function one<T = Manifest>(kind: string, name: string): T {
  const found = applied.filter((m) => m.kind === kind && m.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0] as T;
}

/** deploy/rxgate.yaml as written (raw YAML: the keys the manifests must agree with). */
const gatewayYaml = parseYaml(read('deploy/rxgate.yaml')) as {
  listen: { port: number }; admin: { port: number }; drain: { timeout: string }; reload: { watch: boolean }; redis: { url: string };
};

type DeploymentShape = { spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: IPodSpec } } };

const gateway = one<DeploymentShape>('Deployment', 'rxgate');
const pod = gateway.spec.template.spec;
const container: IContainer = pod.containers[0]!;
const portNamed = (name: string): number => container.ports!.find((p) => p.name === name)!.containerPort;

describe('Kubernetes manifests (deploy/)', () => {
  it('lists every manifest file in the kustomization, and each is valid against the Kubernetes schemas', () => {
    const files = readdirSync(deploy).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'rxgate.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    expect(applied.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ConfigMap/rxgate-config', 'Deployment/rxgate', 'Deployment/rxgate-redis', 'HorizontalPodAutoscaler/rxgate',
      'NetworkPolicy/rxgate-redis', 'PodDisruptionBudget/rxgate', 'Service/rxgate', 'Service/rxgate-redis',
    ]);
    for (const m of applied) {
      const Model = MODELS[`${m.apiVersion}/${m.kind}`];
      expect(Model, `${m.apiVersion} ${m.kind} has a schema here`).toBeDefined();
      expect(() => new Model!(m as never).validate(), `${m.kind}/${m.metadata.name}`).not.toThrow();
    }
  });

  it('rejects a manifest with a wrongly typed field (the schema check is real)', () => {
    const broken = structuredClone(gateway) as unknown as Manifest & DeploymentShape;
    broken.spec.template.spec.containers[0]!.ports![0]!.containerPort = '8080' as never;
    expect(() => new Deployment(broken as never).validate()).toThrow(/containerPort must be integer/);
  });

  it('exposes the gateway and admin ports of deploy/rxgate.yaml, and only the gateway port in the Service', () => {
    expect(portNamed('http')).toBe(gatewayYaml.listen.port);
    expect(portNamed('admin')).toBe(gatewayYaml.admin.port);
    const svc = one<{ spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } }>('Service', 'rxgate');
    expect(svc.spec.ports.map((p) => p.targetPort)).toEqual(['http']);
    expect(gateway.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    expect(gateway.spec.template.metadata.labels).toMatchObject(gateway.spec.selector.matchLabels);
  });

  it('probes readiness on the admin listener\'s /ready, and liveness on the admin listener but neither /ready nor /health', () => {
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'admin' });
    const live = container.livenessProbe?.httpGet;
    expect(live?.port).toBe('admin');
    // /ready is 503 while draining and /health is 503 when upstreams are down: neither may restart a gateway.
    expect(['/ready', '/health']).not.toContain(live?.path);
    expect(live?.path).toBe('/live');
  });

  it('gives the pod a termination grace period longer than the preStop pause plus drain.timeout', () => {
    const preStop = container.lifecycle?.preStop?.exec?.command;
    expect(preStop?.[0]).toBe('sleep');
    const pause = Number(preStop?.[1]);
    const drain = parseDuration(gatewayYaml.drain.timeout) / 1000;
    expect(drain).toBe(25);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + drain);
    // And the rollout never takes a serving pod away before its replacement is ready.
    expect((gateway.spec as { strategy?: { rollingUpdate?: { maxUnavailable?: number } } }).strategy?.rollingUpdate?.maxUnavailable).toBe(0);
  });

  it('mounts the ConfigMap as a directory (no subPath, so updates reach the pod) where the args read it, with reload.watch on', () => {
    const generated = kustomization.configMapGenerator.find((g) => g.files.includes('rxgate.yaml'))!;
    // A hash suffix would turn every edit into a rollout instead of a reload.
    expect(generated.options?.disableNameSuffixHash).toBe(true);
    const volume = pod.volumes!.find((v) => v.configMap?.name === generated.name)!;
    const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
    expect(mount.subPath).toBeUndefined();
    expect(container.args).toEqual(['--config', `${mount.mountPath}/rxgate.yaml`]);
    expect(gatewayYaml.reload.watch).toBe(true);
  });

  it('runs as a non-root user on a read-only root filesystem, with a CPU request for the autoscaler and a memory limit', () => {
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBe(1000);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(container.resources?.requests?.['cpu']).toBeDefined();
    expect(container.resources?.limits?.['memory']).toBeDefined();
  });

  it('autoscales the gateway Deployment on CPU from at least the PodDisruptionBudget\'s floor', () => {
    const hpa = one<{ spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: Array<{ resource?: { name: string } }> } }>('HorizontalPodAutoscaler', 'rxgate');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'rxgate' });
    expect(hpa.spec.metrics.map((m) => m.resource?.name)).toEqual(['cpu']);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    // The autoscaler owns the count: a replicas field would reset it on every apply.
    expect(gateway.spec.replicas).toBeUndefined();
    const pdb = one<{ spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget', 'rxgate');
    expect(pdb.spec.maxUnavailable).toBeLessThan(hpa.spec.minReplicas);
    expect(gateway.spec.template.metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
  });

  it('points REDIS_URL (and rxgate.yaml\'s default) at the Redis Service, which only gateway pods may reach', () => {
    const redisSvc = one<{ spec: { selector: Record<string, string>; ports: Array<{ port: number }> } }>('Service', 'rxgate-redis');
    const expected = `redis://rxgate-redis:${redisSvc.spec.ports[0]!.port}`;
    expect(container.env!.find((e) => e.name === 'REDIS_URL')?.value).toBe(expected);
    expect(gatewayYaml.redis.url).toBe(`\${REDIS_URL:-${expected}}`);
    const redis = one<DeploymentShape>('Deployment', 'rxgate-redis');
    expect(redis.spec.template.metadata.labels).toMatchObject(redisSvc.spec.selector);
    const policy = one<{ spec: { podSelector: { matchLabels: Record<string, string> }; ingress: Array<{ from: Array<{ podSelector: { matchLabels: Record<string, string> } }> }> } }>('NetworkPolicy', 'rxgate-redis');
    expect(policy.spec.podSelector.matchLabels).toEqual(redis.spec.selector.matchLabels);
    expect(policy.spec.ingress[0]!.from[0]!.podSelector.matchLabels).toEqual(gateway.spec.selector.matchLabels);
  });

  it('ships a deploy/rxgate.yaml that is a valid rxgate config', () => {
    expect(() => parseConfig(read('deploy/rxgate.yaml'), 'deploy/rxgate.yaml', {})).not.toThrow();
  });
});

/** Dockerfile instructions, continuation lines joined. */
const instructions = read('Dockerfile').replace(/\\\n/g, ' ').split('\n')
  .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
  .map((l) => {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(l)!;
    return { op: m[1]!, args: m[2]!.trim() };
  });
const stages = instructions.reduce<Array<typeof instructions>>((acc, i) => {
  if (i.op === 'FROM') acc.push([]);
  acc.at(-1)?.push(i);
  return acc;
}, []);
const runtime = stages.at(-1)!;
const ops = (list: typeof instructions, op: string): string[] => list.filter((i) => i.op === op).map((i) => i.args);

/** A .dockerignore pattern as a regular expression over paths relative to the context (the subset of the syntax used here). */
function ignoreRule(pattern: string): RegExp {
  const body = pattern.split('/').map((part) => part === '**' ? '(?:.*)' : part.replace(/[.+^${}()|[\]]/g, '\\$&').replace(/\*/g, '[^/]*')).join('/');
  return new RegExp(`^${body.replace('(?:.*)/', '(?:.*/)?')}(?:/.*)?$`);
}
const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
const isIgnored = (path: string): boolean => ignored.some((p) => ignoreRule(p).test(path));

describe('Dockerfile', () => {
  it('builds in one stage and runs from a slim Node 20 image in another', () => {
    expect(stages).toHaveLength(2);
    expect(ops(instructions, 'ARG')).toContain('NODE_VERSION=20');
    expect(ops(instructions, 'FROM')).toEqual(['node:${NODE_VERSION}-bookworm-slim AS build', 'node:${NODE_VERSION}-bookworm-slim']);
    const build = ops(stages[0]!, 'RUN').join(' && ');
    expect(build).toMatch(/npm ci\b/);
    expect(build).toMatch(/npm run build\b.*npm prune --omit=dev/);
    // The runtime image gets the built and pruned files, not the build's tools.
    expect(ops(runtime, 'COPY').filter((c) => c.startsWith('--from=build'))).toEqual([
      '--from=build /app/node_modules ./node_modules', '--from=build /app/dist ./dist', '--from=build /app/package.json ./package.json',
    ]);
    expect(ops(runtime, 'RUN')).toEqual([]);
  });

  it('runs as the node user, stops on SIGTERM and exposes the ports of deploy/rxgate.yaml', () => {
    const userAt = runtime.findIndex((i) => i.op === 'USER');
    expect(runtime[userAt]?.args).toBe('node');
    expect(userAt).toBeLessThan(runtime.findIndex((i) => i.op === 'ENTRYPOINT'));
    expect(ops(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
    expect(ops(runtime, 'EXPOSE')).toEqual([`${gatewayYaml.listen.port} ${gatewayYaml.admin.port}`]);
    expect(JSON.parse(ops(runtime, 'ENTRYPOINT')[0]!)).toEqual(['node', 'bin/rxgate.mjs']);
    expect(JSON.parse(ops(runtime, 'CMD')[0]!)).toEqual(['--config', '/etc/rxgate/rxgate.yaml']);
  });

  it('copies only files that exist and that .dockerignore lets into the context', () => {
    const sources = instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'lib', 'bin', 'deploy/rxgate.yaml']));
    for (const src of sources) {
      expect(existsSync(join(root, src)), src).toBe(true);
      expect(isIgnored(src), `${src} is excluded by .dockerignore`).toBe(false);
    }
    for (const dir of ['lib', 'bin']) {
      const files = readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(root, dir, f)).isFile());
      expect(files.filter((f) => isIgnored(`${dir}/${f}`)), `ignored under ${dir}/`).toEqual([]);
    }
    // What must stay out of the context.
    for (const path of ['node_modules', 'dist', '.git', 'test/fixtures/upstream-key.pem', 'README.md']) expect(isIgnored(path), path).toBe(true);
  });

  it('the runtime stage has every file the npm package ships for running (package.json "files"), at the same path', () => {
    const dests = ops(runtime, 'COPY').map((c) => c.split(/\s+/).at(-1)!.replace(/^\.\//, ''));
    const files = (JSON.parse(read('package.json')) as { files: string[] }).files
      // Negations, and what only readers of the package use.
      .filter((f) => !f.startsWith('!') && f !== 'README.md' && f !== 'rxgate.schema.json');
    expect(files).toContain('lib/admin/page.html');
    for (const f of files) expect(dests, f).toContain(f);
  });

  it('has a HEALTHCHECK whose node fetch of /ready exits 0 on 200 and 1 on 503 or no answer', async () => {
    const [healthcheck] = ops(runtime, 'HEALTHCHECK');
    const cmd = JSON.parse(healthcheck!.slice(healthcheck!.indexOf('CMD') + 3)) as string[];
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    const script = cmd[2]!;
    expect(script).toContain(`http://127.0.0.1:${gatewayYaml.admin.port}/ready`);
    let status = 200;
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url!);
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const run = (s: string): Promise<number> => promisify(execFile)(process.execPath, ['-e', s]).then(() => 0, (e: { code: number }) => e.code);
    try {
      const local = script.replace(`127.0.0.1:${gatewayYaml.admin.port}`, `127.0.0.1:${port}`);
      expect(await run(local)).toBe(0);
      status = 503;
      expect(await run(local)).toBe(1);
      expect(seen).toEqual(['/ready', '/ready']);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(await run(script.replace(`127.0.0.1:${gatewayYaml.admin.port}`, `127.0.0.1:${port}`))).toBe(1);
  });
});
