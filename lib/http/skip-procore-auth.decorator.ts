import { SetMetadata } from '@nestjs/common';
import { SKIP_PROCORE_AUTH } from '../procore-auth.constants.js';

/**
 * Exempts a route or controller from a global `ProcoreAuthGuard` (health checks, the app's own
 * login routes). The module's OAuth routes are exempt already.
 * @publicApi
 */
export const SkipProcoreAuth = () => SetMetadata(SKIP_PROCORE_AUTH, true);
