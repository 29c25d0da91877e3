/**
 * The page routes of `ferry serve`: the catalog at `/` exactly and its assets under `/-/ui/`.
 * Neither path is one a Go or OCI client asks for (see UI_PREFIX), so the pages never shadow a
 * GOPROXY or registry route.
 */
import type { TLSSocket } from 'node:tls';
import type { CatalogReader } from './catalog-data.js';
import { renderCatalog } from './catalog.js';
import { bufferResource, sendResource, sendText, type ServeContext } from './http.js';
import { PAGE_HEADERS, UI_ASSETS, UI_PREFIX } from './ui-assets.js';

/** The longest filter kept from `?q=`. */
const MAX_QUERY = 200;

/** True for the paths the pages answer: `/` and anything under `/-/ui/`. */
export function isPagePath(rawPath: string): boolean {
  return rawPath === '/' || rawPath.startsWith(UI_PREFIX);
}

/**
 * The host the client named, when it is a plain `host[:port]` (a name, IPv4 or bracketed IPv6),
 * else the fallback: it goes into commands shown on the page, so it must be something a user
 * can paste (it is escaped like everything else either way).
 */
export function requestHost(header: string | undefined, fallback: string): string {
  if (header !== undefined && /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/.test(header)) return header;
  return fallback;
}

/** Answers a page path (isPagePath): the catalog, or one of Ferry's assets. */
export async function servePage(ctx: ServeContext, catalog: CatalogReader): Promise<void> {
  if (ctx.rawPath !== '/') {
    const a = UI_ASSETS.get(ctx.rawPath.slice(UI_PREFIX.length));
    if (!a) return sendText(ctx, 404, 'not found: no such asset', { 'X-Content-Type-Options': 'nosniff' });
    return sendResource(ctx, bufferResource(a.bytes, a.contentType, { etag: a.etag, headers: { 'Cache-Control': 'public, max-age=31536000, immutable', 'X-Content-Type-Options': 'nosniff' } }));
  }
  const data = await catalog.read(ctx.signal);
  const encrypted = (ctx.req.socket as Partial<TLSSocket>).encrypted === true;
  const local = ctx.req.socket.localAddress ?? '127.0.0.1';
  const fallback = `${local.includes(':') ? `[${local}]` : local}:${ctx.req.socket.localPort ?? ''}`;
  const page = renderCatalog(data, {
    host: requestHost(ctx.req.headers.host, fallback),
    scheme: encrypted ? 'https' : 'http',
    query: (ctx.query.get('q') ?? '').trim().toLowerCase().slice(0, MAX_QUERY),
  });
  return sendResource(ctx, bufferResource(Buffer.from(page, 'utf8'), 'text/html; charset=utf-8', { headers: { ...PAGE_HEADERS } }));
}
