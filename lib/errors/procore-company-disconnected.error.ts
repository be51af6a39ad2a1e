import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Procore answered 403 "App is not connected to this company": the company removed (uninstalled)
 * the app. Not a user revoke: the owner's connection stays active and keeps working for other
 * companies. Further calls for this owner (or service account) and company fail fast with this
 * error, without calling Procore, until `retryAt`.
 * @publicApi
 */
export class ProcoreCompanyDisconnectedError extends ProcoreAuthError {
  readonly code = 'company_disconnected';

  constructor(
    /** `{ ownerId }` for a user's client, `{ serviceAccount }` for a service account (`''`: the app's own). */
    readonly holder: { ownerId: string } | { serviceAccount: string },
    readonly companyId: string,
    /** Until when calls for this holder and company fail fast. */
    readonly retryAt: Date,
  ) {
    super(
      `Procore company ${companyId} is not connected to the app (${
        'ownerId' in holder
          ? `owner "${holder.ownerId}"`
          : `service account "${holder.serviceAccount || 'default'}"`
      }): an administrator of that company must install the app again.`,
    );
  }
}
