import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Observable, Subject, filter } from 'rxjs';

/**
 * Event names. When the app has `@nestjs/event-emitter` (`EventEmitterModule.forRoot()`), every
 * event is also emitted through `EventEmitter2` under its name: `@OnEvent('procore.token.refreshed')`.
 * @publicApi
 */
export const ProcoreAuthEventType = {
  Connected: 'procore.connection.connected',
  TokenRefreshed: 'procore.token.refreshed',
  RefreshFailed: 'procore.token.refresh_failed',
  ReauthorizationRequired: 'procore.connection.reauthorization_required',
  Revoked: 'procore.connection.revoked',
  /** Procore answered 403 "App is not connected to this company" (the company uninstalled the app). */
  CompanyDisconnected: 'procore.company.disconnected',
  /** Procore answered 429 to an API call. */
  RateLimited: 'procore.api.rate_limited',
} as const;

/** Whose call it was: an owner, or a service account (`''`: the app's own credentials). */
export type ProcoreApiHolder =
  { ownerId: string; serviceAccount?: undefined } | { ownerId?: undefined; serviceAccount: string };

/** What started a refresh. */
/** What started a refresh; `unauthorized`: Procore's API answered 401 to the current token. */
export type ProcoreRefreshTrigger = 'request' | 'scheduler' | 'manual' | 'unauthorized';

/** Events carry ids, times and error codes: never a token, code or secret. */
export type ProcoreAuthEvent =
  | { type: typeof ProcoreAuthEventType.Connected; ownerId: string; at: Date }
  | {
      type: typeof ProcoreAuthEventType.TokenRefreshed;
      ownerId: string;
      at: Date;
      expiresAt: Date;
      version: number;
      trigger: ProcoreRefreshTrigger;
    }
  | {
      type: typeof ProcoreAuthEventType.RefreshFailed;
      ownerId: string;
      at: Date;
      errorCode: string;
      attempts: number;
      trigger: ProcoreRefreshTrigger;
    }
  | {
      type: typeof ProcoreAuthEventType.ReauthorizationRequired;
      ownerId: string;
      at: Date;
      /** `invalid_grant` or `refresh_response_lost`. */
      cause: string;
    }
  | { type: typeof ProcoreAuthEventType.Revoked; ownerId: string; at: Date }
  | ({
      type: typeof ProcoreAuthEventType.CompanyDisconnected;
      companyId: string;
      at: Date;
      /** Calls of this holder for this company fail fast until then. */
      retryAt: Date;
    } & ProcoreApiHolder)
  | ({
      type: typeof ProcoreAuthEventType.RateLimited;
      method: string;
      /** Without the query string. */
      path: string;
      at: Date;
      retryAt: Date;
    } & ProcoreApiHolder);

/**
 * The module's event stream. Subscribe to `events$` (or `on(type)`), e.g. to alert on
 * reauthorizations. With `@nestjs/event-emitter` in the app, the same events also reach
 * `@OnEvent()` listeners (see `ProcoreAuthEventType`).
 * @publicApi
 */
@Injectable()
export class ProcoreAuthEvents implements OnApplicationShutdown {
  private readonly subject = new Subject<ProcoreAuthEvent>();

  /** Every event, as it happens (hot: subscribe at startup). */
  readonly events$: Observable<ProcoreAuthEvent> = this.subject.asObservable();

  /** The events of one type. */
  on<T extends ProcoreAuthEvent['type']>(
    type: T,
  ): Observable<Extract<ProcoreAuthEvent, { type: T }>> {
    return this.events$.pipe(
      filter((event): event is Extract<ProcoreAuthEvent, { type: T }> => event.type === type),
    );
  }

  /** @internal */
  emit(event: ProcoreAuthEvent): void {
    this.subject.next(event);
  }

  /** Completes the stream after the shutdown drain, so events of refreshes finished on shutdown still arrive. */
  onApplicationShutdown(): void {
    this.subject.complete();
  }
}
