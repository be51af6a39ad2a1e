import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Subscription } from 'rxjs';
import { ProcoreAuthEvents } from './procore-auth.events.js';

/** What the bridge needs of `EventEmitter2`. */
interface Emitter {
  emit(event: string, ...values: unknown[]): boolean;
  /** Calls the listeners and settles with their results: an async listener's rejection too. */
  emitAsync?(event: string, ...values: unknown[]): Promise<unknown[]> | false;
}

/**
 * Publishes every event of `ProcoreAuthEvents` through `@nestjs/event-emitter` too, when the app
 * has it (`EventEmitterModule.forRoot()`): `@OnEvent('procore.token.refreshed')` then receives it,
 * under the names of `ProcoreAuthEventType`. The package is an optional peer, loaded only here.
 */
@Injectable()
export class ProcoreEventEmitterBridge implements OnApplicationBootstrap {
  private readonly logger = new Logger('ProcoreAuth');
  private subscription: Subscription | undefined;

  constructor(
    private readonly events: ProcoreAuthEvents,
    private readonly moduleRef: ModuleRef,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const emitter = await this.findEmitter();
    if (!emitter) return;
    this.subscription = this.events.events$.subscribe((event) => {
      // A listener that throws must not break the refresh that emitted the event, and one that
      // rejects (an async listener, with `suppressErrors: false`) must not become an unhandled
      // rejection, which stops Node.
      const failed = (error: unknown) =>
        this.logger.error(
          `An @OnEvent('${event.type}') listener threw: ${(error as Error)?.name ?? 'error'}.`,
        );
      try {
        // emit() where emitAsync() is missing (an app's stand-in for EventEmitter2 in its tests).
        if (typeof emitter.emitAsync !== 'function') emitter.emit(event.type, event);
        else void Promise.resolve(emitter.emitAsync(event.type, event)).catch(failed);
      } catch (error) {
        failed(error);
      }
    });
    this.logger.debug('Procore events are also published through EventEmitter2.');
  }

  /** The app's `EventEmitter2`, if it uses `@nestjs/event-emitter`. */
  private async findEmitter(): Promise<Emitter | undefined> {
    try {
      const { EventEmitter2 } = await import('@nestjs/event-emitter');
      return this.moduleRef.get(EventEmitter2, { strict: false }) as Emitter;
    } catch {
      return undefined; // Not installed, or EventEmitterModule not imported.
    }
  }
}
