import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Pool } from 'undici';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { NOT_SENT_CODES } from '../oauth/retry-policy.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';

/** One HTTP exchange with Procore's API host, as the client needs it. */
export interface ApiExchange {
  status: number;
  /** Lower-case header names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

/** Why an exchange did not produce an answer. */
export type ApiTransportFailure =
  /** The request provably never left (connection refused, DNS): safe to repeat. */
  | 'not_sent'
  /** Sent, no (complete) answer: reset, timeout. Procore may have processed it. */
  | 'no_answer'
  /** The caller's `AbortSignal` fired. */
  | 'aborted'
  /** The answer exceeded `api.maxResponseBytes`. */
  | 'too_large';

export class ApiTransportError extends Error {
  constructor(
    readonly failure: ApiTransportFailure,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${failure}: ${detail}`, options);
  }
}

/**
 * HTTP to Procore's API host over one pooled, keep-alive undici `Pool` (the client Node's `fetch`
 * is built on, without fetch's per-call stream and header object overhead): a hot path makes many
 * small calls to one origin. Only `apiBaseUrl`'s origin is ever dialled.
 */
@Injectable()
export class ProcoreApiTransport implements OnApplicationShutdown {
  private readonly pool: Pool;

  constructor(@Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions) {
    this.pool = new Pool(new URL(options.apiBaseUrl).origin, {
      connections: options.api.connections,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    });
  }

  /** Sends one request; resolves with Procore's answer, whatever its status. */
  async send(params: {
    method: string;
    url: URL;
    headers: Record<string, string>;
    body?: string;
    timeoutMs: number;
    signal?: AbortSignal;
  }): Promise<ApiExchange> {
    const timeout = AbortSignal.timeout(params.timeoutMs);
    const signal = params.signal ? AbortSignal.any([params.signal, timeout]) : timeout;
    try {
      const response = await this.pool.request({
        method: params.method as 'GET',
        path: `${params.url.pathname}${params.url.search}`,
        headers: params.headers,
        body: params.body,
        signal,
      });
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      const body = await this.readBody(response.body);
      return { status: response.statusCode, headers, body };
    } catch (error) {
      if (error instanceof ApiTransportError) throw error;
      if (params.signal?.aborted)
        throw new ApiTransportError('aborted', 'aborted by the caller', { cause: error });
      if (timeout.aborted) {
        throw new ApiTransportError('no_answer', `no answer within ${params.timeoutMs} ms`, {
          cause: error,
        });
      }
      const code = (error as { code?: unknown }).code;
      const failure = NOT_SENT_CODES.has(String(code)) ? 'not_sent' : 'no_answer';
      throw new ApiTransportError(failure, String(code ?? 'network error'), { cause: error });
    }
  }

  /** Reads at most `api.maxResponseBytes`. */
  private async readBody(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
    const limit = this.options.api.maxResponseBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        throw new ApiTransportError(
          'too_large',
          `the body exceeds ${limit} bytes (api.maxResponseBytes)`,
        );
      }
      chunks.push(chunk);
    }
    return chunks.length === 1
      ? chunks[0].toString('utf8')
      : Buffer.concat(chunks).toString('utf8');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.close();
  }
}
