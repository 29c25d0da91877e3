// ferry-bundle.json and parts.json: strict parsing with errors naming the field, and the
// canonical one-object-per-line layout.
import { describe, expect, it } from 'vitest';
import {
  bundleFileName,
  newBundleId,
  parseBundleManifest,
  parsePartsManifest,
  serializeBundleManifest,
  serializePartsManifest,
  type BundleManifest,
} from '../../bundle/index.js';
import { sha256Digest } from '../../oci/index.js';

const hex = 'a'.repeat(64);
const manifest: BundleManifest = {
  formatVersion: 1,
  id: 'ferry-20240102-0002-deadbeef',
  sequence: 2,
  parent: 'ferry-20240101-0001-01234567',
  chain: ['ferry-20240101-0001-01234567'],
  created: '2024-01-02T03:04:05Z',
  store: { id: 's1' },
  images: [{ reference: 'docker.io/library/golang:1.22', target: 'mirror/golang', tag: '1.22', digest: `sha256:${hex}`, mediaType: 'application/vnd.oci.image.index.v1+json', platforms: ['linux/amd64'] }],
  modules: [{ path: 'example.com/m', version: 'v1.0.0', h1: `h1:${'A'.repeat(43)}=`, goModH1: `h1:${'B'.repeat(43)}=`, time: '2024-01-01T00:00:00Z' }],
  files: [
    { path: 'import.sh', size: 10, sha256: hex },
    { path: 'oci-layout', size: 30, sha256: hex },
    { path: 'index.json', size: 300, sha256: hex },
    { path: `blobs/sha256/${hex}`, size: 5, sha256: hex, mediaType: 'application/vnd.oci.image.index.v1+json' },
    { path: 'gomod/example.com/m/@v/list', size: 7, sha256: hex },
  ],
  requires: [sha256Digest('x')],
};

function withField(patch: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ ...manifest, ...patch }));
}

describe('ferry-bundle.json', () => {
  it('serialises in the canonical layout and parses back', () => {
    const bytes = serializeBundleManifest(manifest);
    const text = bytes.toString();
    expect(text.startsWith('{\n  "formatVersion": 1,\n  "id": "ferry-20240102-0002-deadbeef",\n')).toBe(true);
    expect(text.endsWith('\n}\n')).toBe(true);
    expect(text).toContain(`\n    {"path":"import.sh","size":10,"sha256":"${hex}"},\n`);
    expect(text).toContain(`"mediaType":"application/vnd.oci.image.index.v1+json"}`);
    expect(parseBundleManifest(bytes)).toEqual(manifest);
    expect(serializeBundleManifest(parseBundleManifest(bytes)).equals(bytes)).toBe(true);
  });

  it.each([
    [{ formatVersion: 2 }, 'formatVersion'],
    [{ id: 'has space' }, 'id'],
    [{ sequence: 0 }, 'sequence'],
    [{ chain: [] }, 'chain'],
    [{ created: 'yesterday' }, 'created'],
    [{ extra: 1 }, '(root)'],
    [{ requires: ['sha256:abc'] }, 'requires[0]'],
    [{ files: [{ path: '../x', size: 1, sha256: hex }] }, 'files[0].path'],
    [{ files: [{ path: 'import.sh', size: -1, sha256: hex }] }, 'files[0].size'],
    [{ files: [{ path: 'import.sh', size: 1, sha256: 'ABC' }] }, 'files[0].sha256'],
    [{ files: [{ path: `blobs/sha256/${'b'.repeat(64)}`, size: 1, sha256: hex }] }, 'files[0].sha256'],
    [{ files: [{ path: 'index.json', size: 1, sha256: hex }, { path: 'oci-layout', size: 1, sha256: hex }] }, 'files[1].path'],
    [{ files: [{ path: 'gomod/a', size: 1, sha256: hex, mediaType: 'x' }] }, 'files[0].mediaType'],
    [{ images: [{ ...manifest.images[0], digest: 'sha256:zz' }] }, 'images[0].digest'],
    [{ modules: [{ ...manifest.modules[0], h1: 'md5:x' }] }, 'modules[0].h1'],
  ])('rejects %j naming %s', (patch, field) => {
    expect(() => parseBundleManifest(withField(patch))).toThrow(
      expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining(`ferry-bundle.json: ${field}`) }),
    );
  });

  it('names a bad entry deep in a long images[], modules[] or files[] by its index, as the array schema did', () => {
    const at = 2_500;
    const images = Array.from({ length: 3_000 }, (_, i) => ({ ...manifest.images[0]!, reference: `docker.io/library/golang:t${i}`, tag: `t${i}` }));
    const bad = (patch: Record<string, unknown>): Buffer => withField({ images: images.map((im, i) => (i === at ? { ...im, ...patch } : im)) });
    const cases: Array<[Buffer, string]> = [
      [bad({ tag: '-x' }), `images[${at}].tag must be a valid tag`],
      [bad({ extra: 1 }), `images[${at}] Unrecognized key: "extra"`],
      [bad({ digest: undefined }), `images[${at}].digest Invalid input: expected string, received undefined`],
      [bad({ platforms: ['linux'] }), `images[${at}].platforms[0] must be os/arch[/variant]`],
      [withField({ images: images.map((im, i) => (i === at ? 'x' : im)) }), `images[${at}] Invalid input: expected object, received string`],
      [withField({ images: {} }), 'images Invalid input: expected array, received object'],
      // The first bad field in the manifest's key order is the one named, as before.
      [withField({ images: images.map((im, i) => (i === at ? { ...im, tag: '-x' } : im)), modules: [{ ...manifest.modules[0], h1: 'md5:x' }] }), `images[${at}].tag must be a valid tag`],
      [withField({ modules: [manifest.modules[0], { ...manifest.modules[0], time: 5 }] }), 'modules[1].time Invalid input: expected string, received number'],
      [withField({ files: [...manifest.files.slice(0, 1), 7] }), 'files[1] Invalid input: expected object, received number'],
    ];
    for (const [bytes, message] of cases) {
      expect(() => parseBundleManifest(bytes)).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: `ferry-bundle.json: ${message}` }));
    }
    // The good list parses to itself, its repeated strings shared.
    const parsed = parseBundleManifest(withField({ images }));
    expect(parsed.images).toEqual(images);
    expect(parsed.images[at]!.platforms).toBe(parsed.images[0]!.platforms);
  });

  it('rejects non-JSON', () => {
    expect(() => parseBundleManifest(Buffer.from('{'))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID' }));
  });
});

describe('parts.json', () => {
  const parts = {
    formatVersion: 1 as const,
    bundleId: 'ferry-20240102-0002-deadbeef',
    name: 'ferry-20240102-0002',
    totalSize: 3,
    sha256: hex,
    parts: [
      { file: 'ferry-20240102-0002.tar.001', size: 2, sha256: hex },
      { file: 'ferry-20240102-0002.tar.002', size: 1, sha256: hex },
    ],
  };
  it('round-trips with one part per line', () => {
    const bytes = serializePartsManifest(parts);
    expect(bytes.toString()).toContain(`\n    {"file":"ferry-20240102-0002.tar.002","size":1,"sha256":"${hex}"}\n  ]\n}\n`);
    expect(parsePartsManifest(bytes)).toEqual(parts);
  });
  it('rejects misnamed parts and a wrong total', () => {
    const swapped = { ...parts, parts: [parts.parts[1], parts.parts[0]] };
    expect(() => parsePartsManifest(Buffer.from(JSON.stringify(swapped)))).toThrow(expect.objectContaining({ message: expect.stringContaining('parts[0].file') }));
    expect(() => parsePartsManifest(Buffer.from(JSON.stringify({ ...parts, totalSize: 4 })))).toThrow(expect.objectContaining({ message: expect.stringContaining('totalSize') }));
  });
});

describe('names', () => {
  it('formats ferry-YYYYMMDD-NNNN in UTC and ids with a random suffix', () => {
    const d = new Date('2024-03-09T23:30:00-05:00');
    expect(bundleFileName(d, 7)).toBe('ferry-20240310-0007');
    expect(bundleFileName(d, 12345)).toBe('ferry-20240310-12345');
    expect(newBundleId(d, 7, Buffer.from([1, 2, 3, 4]))).toBe('ferry-20240310-0007-01020304');
    expect(newBundleId(d, 7)).toMatch(/^ferry-20240310-0007-[0-9a-f]{8}$/);
    expect(() => bundleFileName(d, 0)).toThrow();
  });
});

describe('sources (export --only)', () => {
  it('is written after store only on a partial bundle, round-trips, and must be sorted and unique', () => {
    const partial = { ...manifest, sources: ['a', 'example.com/m'] };
    const bytes = serializeBundleManifest(partial);
    expect(bytes.toString('utf8')).toContain('  "store": {"id":"s1"},\n  "sources": [\n    "a",\n    "example.com/m"\n  ],\n  "images"');
    expect(parseBundleManifest(bytes)).toEqual(partial);
    expect(serializeBundleManifest(manifest).toString('utf8')).not.toContain('"sources"');
    expect(() => parseBundleManifest(withField({ sources: ['b', 'a'] }))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining('sources[1]') }));
    expect(() => parseBundleManifest(withField({ sources: [] }))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining('sources') }));
  });
});

describe('images[].filtered (a platform-filtered index carried beside its original)', () => {
  const f = 'b'.repeat(64);
  const im = manifest.images[0]!;
  const files = [...manifest.files.slice(0, 4), { path: `blobs/sha256/${f}`, size: 5, sha256: f, mediaType: im.mediaType }, manifest.files[4]!];
  const withFiltered = { ...manifest, images: [{ ...im, filtered: `sha256:${f}` as const }], files };

  it('is written last on its image line, only when present, and round-trips', () => {
    const bytes = serializeBundleManifest(withFiltered);
    expect(bytes.toString('utf8')).toContain(`"platforms":["linux/amd64"],"filtered":"sha256:${f}"}`);
    expect(parseBundleManifest(bytes)).toEqual(withFiltered);
    expect(serializeBundleManifest(manifest).toString('utf8')).not.toContain('"filtered"');
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['without platforms', { images: [{ ...im, platforms: null, filtered: `sha256:${f}` }], files }, 'is set but platforms is null'],
    ['on an image manifest', { images: [{ ...im, mediaType: 'application/vnd.oci.image.manifest.v1+json', filtered: `sha256:${f}` }], files }, 'is set but the image is not an index'],
    ['equal to the digest', { images: [{ ...im, filtered: im.digest }], files }, 'must differ'],
    ['not carried', { images: [{ ...im, filtered: `sha256:${f}` }] }, `needs blobs/sha256/${f}`],
    ['carried as another media type', { images: [{ ...im, filtered: `sha256:${f}` }], files: files.map((x) => (x.sha256 === f ? { ...x, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' } : x)) }, `needs blobs/sha256/${f}`],
  ])('is refused %s', (_what, patch, why) => {
    expect(() => parseBundleManifest(withField(patch))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining(`images[0].filtered ${why}`) }));
  });
});

describe('lifecycle (deprecated and archived sources)', () => {
  const lifecycle = [
    { kind: 'image' as const, name: 'app', target: 'mirror/app', state: 'deprecated' as const, note: 'use "mirror/app2" — after 2027' },
    { kind: 'module' as const, name: 'gomod:./go.mod', target: null, state: 'archived' as const },
  ];

  it('is written last, one source per line with the note last, only when some source is not active, and round-trips', () => {
    const bytes = serializeBundleManifest({ ...manifest, lifecycle });
    const text = bytes.toString('utf8');
    expect(text).toContain(
      '  "lifecycle": [\n    {"kind":"image","name":"app","target":"mirror/app","state":"deprecated","note":"use \\"mirror/app2\\" — after 2027"},\n' +
        '    {"kind":"module","name":"gomod:./go.mod","target":null,"state":"archived"}\n  ]\n}\n',
    );
    expect(parseBundleManifest(bytes)).toEqual({ ...manifest, lifecycle });
    expect(serializeBundleManifest({ ...manifest, lifecycle: [] }).equals(serializeBundleManifest(manifest))).toBe(true);
    expect(serializeBundleManifest(manifest).toString('utf8')).not.toContain('"lifecycle"');
  });

  it.each<[string, unknown, string]>([
    ['empty', [], 'lifecycle'],
    ['an active source', [{ ...lifecycle[0], state: 'active' }], 'lifecycle[0].state'],
    ['an unknown kind', [{ ...lifecycle[0], kind: 'chart' }], 'lifecycle[0].kind'],
    ['a note with a control character', [{ ...lifecycle[0], note: 'two\nlines' }], 'lifecycle[0].note'],
    ['a note with a C1 control character', [{ ...lifecycle[0], note: 'x\u0085y' }], 'lifecycle[0].note'],
    ['an unknown key', [{ ...lifecycle[0], since: 'yesterday' }], 'lifecycle[0]'],
    ['a source listed twice', [lifecycle[0], lifecycle[0]], 'lifecycle[1]'],
  ])('refuses %s', (_what, value, field) => {
    expect(() => parseBundleManifest(withField({ lifecycle: value }))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining(`ferry-bundle.json: ${field}`) }));
  });
});

describe('pruned (tags that left upstream, prune: true)', () => {
  const pruned = [{ target: 'mirror/app', tag: 'v1', digest: sha256Digest('v1') }];

  it('is written last, one tag per line, only when some tag left, and round-trips', () => {
    const bytes = serializeBundleManifest({ ...manifest, pruned });
    expect(bytes.toString('utf8')).toContain(`  "pruned": [\n    {"target":"mirror/app","tag":"v1","digest":"${pruned[0]!.digest}"}\n  ]\n}\n`);
    expect(parseBundleManifest(bytes)).toEqual({ ...manifest, pruned });
    expect(serializeBundleManifest({ ...manifest, pruned: [] }).equals(serializeBundleManifest(manifest))).toBe(true);
  });

  it.each<[string, unknown, string]>([
    ['empty', [], 'pruned'],
    ['a bad tag', [{ ...pruned[0], tag: '-x' }], 'pruned[0].tag'],
    ['a bad digest', [{ ...pruned[0], digest: 'sha256:abc' }], 'pruned[0].digest'],
    ['a tag listed twice', [pruned[0], pruned[0]], 'pruned[1]'],
    ['a tag also carried', [{ target: 'mirror/golang', tag: '1.22', digest: sha256Digest('x') }], 'pruned[0]'],
  ])('refuses %s', (_what, value, field) => {
    expect(() => parseBundleManifest(withField({ pruned: value }))).toThrow(expect.objectContaining({ code: 'BUNDLE_INVALID', message: expect.stringContaining(`ferry-bundle.json: ${field}`) }));
  });
});
