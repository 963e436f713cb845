import { END_STREAM, createEnvelopeReader, encodeEnvelope } from './envelope.js';

/** A refused call: the Connect error code (`unauthenticated`, `permission_denied`, ...) and message. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The heimdall.v1 services, by short name. */
export type Service = 'QueryService' | 'JobService' | 'SystemService' | 'SecurityService' | 'EventService';

/** Calls the agent's Connect API (JSON) on the page's own origin, with the signed-in token. */
export interface Api {
  /** A unary call; rejects with ApiError. */
  call<T>(service: Service, method: string, body: unknown, signal?: AbortSignal): Promise<T>;
  /** A server-streaming call: `onMessage` for each message; resolves at the end of the stream, rejects with ApiError. */
  stream<T>(service: Service, method: string, body: unknown, onMessage: (message: T) => void, signal?: AbortSignal): Promise<void>;
  /** A GET of an admin path (e.g. `/metrics`) with the token; rejects with ApiError on a non-2xx answer. */
  text(path: string, signal?: AbortSignal): Promise<string>;
}

/** Bound on one stream message (a WatchJob update is under 1 KB). */
const MAX_STREAM_MESSAGE = 4 * 1024 * 1024;

/** The ApiError of a non-2xx answer: Connect's `{code, message}`, or the router's `{error}`. */
async function errorOf(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string; error?: string };
  const code = body.code ?? ({ 401: 'unauthenticated', 403: 'permission_denied', 404: 'not_found', 503: 'unavailable' } as Record<number, string>)[res.status] ?? 'unknown';
  return new ApiError(code, body.message ?? body.error ?? `HTTP ${res.status}`);
}

/** Reads a Connect response stream: messages to `onMessage`, the end-stream error thrown. */
async function readStream<T>(res: Response, onMessage: (message: T) => void): Promise<void> {
  if (!res.body) throw new ApiError('unknown', 'empty stream');
  const reader = res.body.getReader();
  const envelopes = createEnvelopeReader(MAX_STREAM_MESSAGE);
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new ApiError('unavailable', 'the stream ended without its end message');
    for (const e of envelopes.push(value)) {
      const json: unknown = JSON.parse(decoder.decode(e.data));
      if ((e.flags & END_STREAM) === 0) {
        onMessage(json as T);
        continue;
      }
      const end = json as { error?: { code?: string; message?: string } };
      if (end.error) throw new ApiError(end.error.code ?? 'unknown', end.error.message ?? 'stream failed');
      return;
    }
  }
}

/** Creates the API client; `token()` is read at each call (undefined: no authorization header, as with auth off). */
export function createApi(token: () => string | undefined): Api {
  const headers = (contentType: string): Record<string, string> => {
    const t = token();
    return { 'content-type': contentType, 'connect-protocol-version': '1', ...(t ? { authorization: `Bearer ${t}` } : {}) };
  };
  const url = (service: Service, method: string) => `/heimdall.v1.${service}/${method}`;
  return {
    async call<T>(service: Service, method: string, body: unknown, signal?: AbortSignal): Promise<T> {
      const res = await fetch(url(service, method), { method: 'POST', headers: headers('application/json'), body: JSON.stringify(body), signal, cache: 'no-store' });
      if (!res.ok) throw await errorOf(res);
      return (await res.json()) as T;
    },
    async stream<T>(service: Service, method: string, body: unknown, onMessage: (message: T) => void, signal?: AbortSignal): Promise<void> {
      const res = await fetch(url(service, method), { method: 'POST', headers: headers('application/connect+json'), body: encodeEnvelope(body), signal, cache: 'no-store' });
      if (!res.ok) throw await errorOf(res);
      await readStream(res, onMessage);
    },
    async text(path: string, signal?: AbortSignal): Promise<string> {
      const t = token();
      const res = await fetch(path, { headers: t ? { authorization: `Bearer ${t}` } : {}, signal, cache: 'no-store' });
      if (!res.ok) throw await errorOf(res);
      return res.text();
    },
  };
}
