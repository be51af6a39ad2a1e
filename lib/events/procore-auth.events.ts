import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Observable, Subject, filter } from 'rxjs';

/** Event names, usable as `@OnEvent()` names when you bridge the stream to `@nestjs/event-emitter`. */
export const ProcoreAuthEventType = {
  Connected: 'procore.connection.connected',
  TokenRefreshed: 'procore.token.refreshed',
  RefreshFailed: 'procore.token.refresh_failed',
  ReauthorizationRequired: 'procore.connection.reauthorization_required',
  Revoked: 'procore.connection.revoked',
} as const;

/** What started a refresh. */
export type ProcoreRefreshTrigger = 'request' | 'scheduler' | 'manual';

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
  | { type: typeof ProcoreAuthEventType.Revoked; ownerId: string; at: Date };

/**
 * The module's event stream. Subscribe to `events$` (or `on(type)`), e.g. to alert on
 * reauthorizations or to forward events to `EventEmitter2`:
 * `events.events$.subscribe((event) => emitter.emit(event.type, event))`.
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
