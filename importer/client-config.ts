/** What intranet users set after an import: Go environment, containers' registries.conf, Docker's daemon.json, how to read an OCI layout. */
import { pathToFileURL } from 'node:url';
import { parseReference } from '../oci/index.js';
import { prefixed } from './import-util.js';

/** The client configuration printed (and returned with --json) after a successful import. */
export interface ClientConfig {
  /** Go environment variables. */
  readonly env: Readonly<Record<string, string>>;
  /** Explanations and warnings to print with the variables. */
  readonly notes: readonly string[];
  /** A snippet for /etc/containers/registries.conf (podman, buildah, skopeo, CRI-O), when images were imported into a registry. */
  readonly registriesConf?: string;
  /** A snippet for /etc/docker/daemon.json, when it can work (Docker Hub images, no prefix). */
  readonly daemonJson?: string;
}

/** What buildClientConfig needs to know. */
export interface ClientConfigInput {
  readonly gomodDir?: string;
  readonly store?: string;
  /** The OCI image layout directory images were written to. */
  readonly ociDir?: string;
  /** The `ferry serve` URL when known. */
  readonly serveUrl?: string;
  /** Intranet registry host[:port]. */
  readonly registry?: string;
  readonly prefix?: string;
  /** The intranet registry speaks plain HTTP (or has a certificate clients do not trust). */
  readonly insecureRegistry?: boolean;
  /** Every image imported: upstream reference and target path (walked once). */
  readonly images: Iterable<{ readonly reference: string; readonly target: string }>;
  /** Checksum databases carried under gomod/sumdb/. */
  readonly sumdb: readonly string[];
  /** True when any Go module was imported. */
  readonly modules: boolean;
}

/** Builds the client configuration for intranet users. */
export function buildClientConfig(i: ClientConfigInput): ClientConfig {
  const env: Record<string, string> = {};
  const notes: string[] = [];
  if (i.gomodDir !== undefined || i.store !== undefined || i.modules) {
    if (i.gomodDir !== undefined) {
      env['GOPROXY'] = pathToFileURL(i.gomodDir).href;
      notes.push(`GOPROXY: file:// works on this host; elsewhere serve ${i.gomodDir} with any web server or \`ferry serve --gomod-dir ${i.gomodDir}\` and use its URL.`);
    } else {
      env['GOPROXY'] = i.serveUrl ?? 'http://FERRY-SERVE-HOST:8080';
      if (i.serveUrl === undefined) notes.push(`GOPROXY: run \`ferry serve --store ${i.store ?? 'DIR'}\` and put its URL here.`);
    }
    if (i.sumdb.length > 0) {
      const name = i.sumdb[0]!;
      env['GOSUMDB'] = name;
      notes.push(
        `GOSUMDB=${name}: the bundle carried ${name}'s checksum database files; go asks for them through GOPROXY (${'$'}GOPROXY/sumdb/${name}/) and checks them against the database's public key, so nothing but GOPROXY changes.`,
      );
    } else {
      env['GOSUMDB'] = 'off';
      notes.push(
        'GOSUMDB=off: no checksum database is reachable inside. go.sum still protects: every go.sum line a project already has is enforced, and Ferry verified each module\'s h1 against the signed bundle before writing it. (GONOSUMDB=* has the same effect for all modules.)',
      );
    }
    env['GOTOOLCHAIN'] = 'local';
    notes.push('GOTOOLCHAIN=local: the go command must not try to download a newer toolchain.');
  }
  let registriesConf: string | undefined;
  let daemonJson: string | undefined;
  let firstTarget: string | undefined;
  const blocks = new Map<string, string>();
  let hubOnlyPlain = i.prefix === undefined || i.prefix === '';
  let hub = false;
  for (const im of i.images) {
    firstTarget ??= im.target;
    if (i.registry === undefined) continue;
    const ref = parseReference(im.reference);
    const upstream = `${ref.registry}/${ref.repository}`;
    const mirror = `${i.registry}/${prefixed(i.prefix, im.target)}`;
    if (ref.registry === 'docker.io') {
      hub = true;
      if (im.target !== ref.repository) hubOnlyPlain = false;
    }
    blocks.set(
      upstream,
      `[[registry]]\nprefix = "${upstream}"\nlocation = "${upstream}"\n\n[[registry.mirror]]\nlocation = "${mirror}"${i.insecureRegistry ? '\ninsecure = true' : ''}\n`,
    );
  }
  if (i.registry !== undefined && firstTarget !== undefined) {
    registriesConf = [...blocks.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, b]) => b).join('\n');
    if (hub && hubOnlyPlain) {
      const scheme = i.insecureRegistry ? 'http' : 'https';
      const cfg: Record<string, unknown> = { 'registry-mirrors': [`${scheme}://${i.registry}`] };
      if (i.insecureRegistry) cfg['insecure-registries'] = [i.registry];
      daemonJson = `${JSON.stringify(cfg, null, 2)}\n`;
      notes.push("daemon.json: Docker's registry-mirrors applies to Docker Hub images only; pull every other image by its intranet name.");
    } else {
      notes.push(
        "Docker: registry-mirrors in daemon.json works only for Docker Hub images (and without a prefix); pull these images by their intranet names, e.g. " +
          `${i.registry}/${prefixed(i.prefix, firstTarget)}.`,
      );
    }
  }
  if (i.ociDir !== undefined && firstTarget !== undefined) {
    notes.push(
      `OCI layout ${i.ociDir}: read an image by its name in index.json (the tag lines above), e.g. \`skopeo copy oci:${i.ociDir}:NAME docker://HOST/REPO:TAG\` or \`podman pull oci:${i.ociDir}:NAME\`. ` +
        `For containerd (\`ctr -n k8s.io image import\`) or the k3s/RKE2 air-gap image folder (agent/images/), make a tar of it without Ferry's own files: ` +
        `\`tar -C ${i.ociDir} --exclude='.ferry-*' -cf images.tar .\`.`,
    );
  }
  return { env, notes, ...(registriesConf !== undefined ? { registriesConf } : {}), ...(daemonJson !== undefined ? { daemonJson } : {}) };
}
