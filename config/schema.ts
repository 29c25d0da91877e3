/** Ferry's versioned configuration schema (zod 4). Key names here are a public contract. */
import { validateDetailed } from 'node-cron';
import validRange from 'semver/ranges/valid.js';
import * as z from 'zod';
import { isValidRepository } from '../oci/reference.js';

/** A secret reference: `env:NAME` or `file:PATH`. Plain-text secrets are refused. */
export const SecretRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/, 'expected a secret reference "env:NAME" or "file:PATH" (plain-text secrets are not accepted)');

/** A string that may be a secret reference or plain text (usernames). */
const MaybeSecret = z.string().min(1);

/** A tag or version pattern: a glob (`v*`, `1.2?`) or a `/regular expression/`. */
const Pattern = z.string().min(1).superRefine((s, ctx) => {
  if (s.length > 1 && s.startsWith('/') && s.endsWith('/')) {
    try {
      new RegExp(s.slice(1, -1));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `invalid regular expression ${s}: ${(err as Error).message}` });
    }
  }
});

/** Byte sizes like `4GiB`, `700MB`, `1048576`. */
export const ByteSize = z.union([
  z.number().int().positive(),
  z.string().regex(/^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$/, 'expected a size such as 700MB, 4GiB or a number of bytes'),
]);

/** Durations like `30s`, `2m`, `500ms`, `1h`, or a number of seconds. */
export const Duration = z.union([
  z.number().positive(),
  z.string().regex(/^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$/, 'expected a duration such as 30s, 2m or 500ms (a bare number means seconds)'),
]);

const Cron = z.string().min(1).superRefine((s, ctx) => {
  const fields = s.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) {
    ctx.addIssue({ code: 'custom', message: `expected a cron expression with 5 or 6 fields (seconds optional), got "${s}"` });
    return;
  }
  // The daemon schedules with node-cron: accept exactly what it accepts.
  const v = validateDetailed(s);
  if (!v.valid) {
    ctx.addIssue({ code: 'custom', message: `invalid cron expression "${s}": ${v.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}` });
  }
});

const TlsMode = z.enum(['verify', 'insecure', 'plain-http']);

/** An upstream registry's connection settings. */
export const RegistrySchema = z.strictObject({
  host: z.string().min(1).regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected host[:port] without a scheme'),
  tls: TlsMode.default('verify'),
  caFile: z.string().min(1).optional(),
  username: MaybeSecret.optional(),
  password: SecretRef.optional(),
  /** Extra registry names that resolve to the same host (rarely needed). */
  mirrorOf: z.string().optional(),
  /** Silence allowed while a response body arrives before the transfer resumes with Range. @default 30s */
  idleTimeout: Duration.optional(),
  /** Tag list pages followed per repository. @default 10000 */
  maxTagPages: z.number().int().positive().optional(),
  /** Tags per repository. @default 100000 */
  maxTags: z.number().int().positive().optional(),
  /** Bytes of one repository's tag list pages together. @default 64MiB */
  maxTagListBytes: ByteSize.optional(),
});

const TagFilter = z.strictObject({
  include: z.array(Pattern).optional(),
  exclude: z.array(Pattern).optional(),
  semver: z
    .string()
    .refine((r) => validRange(r, { loose: true }) !== null, 'expected a semver range such as ">=1.22 <1.24"')
    .optional(),
  latest: z.number().int().positive().optional(),
});

/** A source's stage of life, in order: synced, then still synced with users told to move, then never contacted again. */
export const LIFECYCLE_STATES = ['active', 'deprecated', 'archived'] as const;
/** `active` (default) | `deprecated` (still synced, announced inside) | `archived` (no upstream request at all; content kept). */
const Lifecycle = z.enum(LIFECYCLE_STATES).default('active');
/** What users of a deprecated or archived source should know (the replacement to use): one line of text. */
const LifecycleNote = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[^\p{Cc}]*$/u, 'expected one line of text without control characters (at most 1024 characters)');

const Platform = z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'expected os/arch[/variant], e.g. linux/amd64');

/**
 * Attachments (signatures, attestations, SBOMs, OCI referrers) followed with an image: `true`
 * follows all, `false` none, `{artifactTypes: [...]}` only those of the artifact types named.
 */
export const ReferrersSchema = z.union([
  z.boolean(),
  z.strictObject({
    artifactTypes: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/, 'expected a media type such as application/vnd.dev.cosign.artifact.sig.v1+json')).min(1),
  }),
]);

/** One mirrored image source. */
export const ImageSchema = z.strictObject({
  name: z.string().min(1).optional(),
  source: z.string().min(1),
  tags: TagFilter.optional(),
  platforms: z.array(Platform).min(1).optional(),
  target: z
    .string()
    .refine((t) => isValidRepository(t), 'expected a repository path (lowercase letters, digits, . _ - separated by /)')
    .optional(),
  schedule: Cron.optional(),
  /**
   * Foreign (non-distributable) layers, e.g. Windows base layers: `skip` carries the manifest
   * without them, as registries and skopeo do; `fetch` downloads them from their `urls`.
   */
  foreignLayers: z.enum(['skip', 'fetch']).default('skip'),
  /** Attachments followed with this image's tags. @default the top-level `referrers`, else true */
  referrers: ReferrersSchema.optional(),
  /** Mirror a tag only when its digest has a cosign signature that verifies with one of these public keys (PEM files). */
  verify: z.strictObject({ keys: z.array(z.string().min(1)).min(1).max(64) }).optional(),
  lifecycle: Lifecycle,
  note: LifecycleNote.optional(),
  /**
   * A tag gone upstream, or no longer matching the filters, leaves the store's live tags (a
   * journal entry), and the next bundle has importers delete it where Ferry placed it.
   */
  prune: z.boolean().default(false),
});

const GoVersions = z.union([
  z.literal('latest'),
  z.array(z.string().regex(/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+incompatible)?$/, 'expected a Go module version such as v1.2.3')).min(1),
  z.string().min(1),
]);

const GoModuleByPath = z.strictObject({
  path: z.string().min(1),
  versions: GoVersions.default('latest'),
  deps: z.boolean().default(true),
  schedule: Cron.optional(),
  lifecycle: Lifecycle,
  note: LifecycleNote.optional(),
});
const GoModuleByGomod = z.strictObject({
  gomod: z.string().min(1),
  schedule: Cron.optional(),
  lifecycle: Lifecycle,
  note: LifecycleNote.optional(),
});

/**
 * GOPROXY requests in flight by default, apart from `concurrency` (which registries share):
 * module files are small and many, and with 8 in flight a sync of 500 versions waited on round
 * trips (32 was 7-12% faster in alternating runs; 64 and 128 no faster than 32). 16 against 32,
 * alternating on two cores shared with other work: faster in 11 of 13 pairs (500 and 2,000
 * versions), with less CPU and a few MB less peak memory.
 */
export const DEFAULT_MODULE_CONCURRENCY = 16;

/** Go module mirroring. */
export const GoModulesSchema = z.strictObject({
  proxy: z.string().regex(/^(https?|file):\/\//, 'expected an http://, https:// or file:// GOPROXY base URL').default('https://proxy.golang.org'),
  /** `off`, or a key string `name+hash+key` with an optional URL, as GOSUMDB takes it. */
  sumdb: z.string().min(1).default('sum.golang.org'),
  /** Module path patterns not checked against the checksum database (like GONOSUMDB). */
  noSumCheck: z.array(z.string().min(1)).default([]),
  username: MaybeSecret.optional(),
  password: SecretRef.optional(),
  tls: TlsMode.default('verify'),
  caFile: z.string().min(1).optional(),
  schedule: Cron.optional(),
  /** Silence allowed while a GOPROXY or checksum database response body arrives. @default 30s */
  idleTimeout: Duration.optional(),
  /** GOPROXY requests in flight. @default DEFAULT_MODULE_CONCURRENCY */
  concurrency: z.number().int().min(1).max(256).default(DEFAULT_MODULE_CONCURRENCY),
  modules: z.array(z.union([GoModuleByPath, GoModuleByGomod])).default([]),
});

/** Bundle export settings. */
export const ExportSchema = z.strictObject({
  signingKey: z.string().min(1).optional(),
  /** Passphrase of an encrypted signing key. */
  signingKeyPassphrase: SecretRef.optional(),
  out: z.string().min(1).optional(),
  splitSize: ByteSize.optional(),
  schedule: Cron.optional(),
  keep: z.number().int().positive().optional(),
  /** A file listing bundle ids confirmed as imported (e.g. `ferry ledger --export`); confirmed bundles may be pruned. */
  confirmations: z.string().min(1).optional(),
});

/** Garbage collection in the daemon (`ferry gc` on a schedule). */
export const GcSchema = z.strictObject({
  schedule: Cron.optional(),
  /** Content stored less recently than this is never removed. @default 1h */
  minAge: Duration.optional(),
});

/** The whole configuration file, version 1. */
export const ConfigSchema = z.strictObject({
  version: z.literal(1, { error: 'expected version: 1 (the only configuration format this Ferry reads)' }),
  store: z.string().min(1).default('./ferry-store'),
  concurrency: z.number().int().min(1).max(256).default(8),
  schedule: Cron.optional(),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') }).optional(),
  registries: z.array(RegistrySchema).default([]),
  /** Attachments followed for every image entry that does not say. @default true */
  referrers: ReferrersSchema.default(true),
  images: z.array(ImageSchema).default([]),
  goModules: GoModulesSchema.optional(),
  export: ExportSchema.optional(),
  gc: GcSchema.optional(),
});

/** The configuration as written, after defaults. */
export type RawConfig = z.infer<typeof ConfigSchema>;
/** One registry entry. */
export type RegistryConfig = z.infer<typeof RegistrySchema>;
/** One image entry as written. */
export type ImageConfigRaw = z.infer<typeof ImageSchema>;
/** Tag filters of an image. */
export type TagFilterConfig = z.infer<typeof TagFilter>;
/** Go module settings. */
export type GoModulesConfig = z.infer<typeof GoModulesSchema>;
/** A source's lifecycle state. */
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];
/** Garbage-collection settings. */
export type GcConfig = z.infer<typeof GcSchema>;
/** Export settings. */
export type ExportConfig = z.infer<typeof ExportSchema>;
/** An attachments setting as written. */
export type ReferrersConfig = z.infer<typeof ReferrersSchema>;
