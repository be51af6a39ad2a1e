import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * HTTP plumbing shared by the fake's login host (`fake-procore.server.ts`) and its REST API
 * (`fake-procore-api.ts`). Internal to `nestjs-procore-auth/testing`.
 */

/** An HTTP answer; `body` is a string so `Content-Length` is always exact. */
export interface FakeHttpReply {
  type: 'respond';
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What a handler decided to do with a request; the server carries it out. */
export type FakeReply = FakeHttpReply | { type: 'hang' } | { type: 'reset' };

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export function respond(
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): FakeHttpReply {
  return { type: 'respond', status, headers: { 'Content-Type': contentType, ...headers }, body };
}

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): FakeHttpReply {
  return respond(status, JSON_CONTENT_TYPE, JSON.stringify(body), headers);
}

/**
 * The body, or undefined when it exceeds `limit`. An oversized body is still read to the end (and
 * dropped) so the client gets the 413 instead of a broken pipe.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(size <= limit ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
    req.on('close', () => reject(new Error('request aborted')));
  });
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Writes `reply` unless the client is already gone. */
export function send(res: ServerResponse, reply: FakeReply): void {
  if (res.destroyed || res.writableEnded) return;
  switch (reply.type) {
    case 'hang':
      // Left open on purpose; close() destroys the socket.
      return;
    case 'reset':
      res.socket?.resetAndDestroy();
      return;
    case 'respond':
      res.writeHead(reply.status, {
        ...reply.headers,
        'Content-Length': String(Buffer.byteLength(reply.body)),
      });
      res.end(reply.body);
  }
}

/** An HTML error page, as a proxy or maintenance page would send. */
export const HTML_ERROR_PAGE = `<!DOCTYPE html>
<html>
<head><title>We're sorry, but something went wrong (500)</title></head>
<body><h1>We're sorry, but something went wrong.</h1><p>Procore is temporarily unavailable.</p></body>
</html>
`;
