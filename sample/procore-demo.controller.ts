import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Req,
  Res,
  UnauthorizedException,
} from '@nestjs/common';
import {
  PROCORE_AUTH_OPTIONS,
  ProcoreToken,
  ProcoreTokenService,
  type ResolvedProcoreAuthOptions,
} from 'nestjs-procore-auth';
import { sampleUser } from './sample-user.js';

interface CookieResponse {
  setHeader?(name: string, value: string): void;
  header?(name: string, value: string): void;
  redirect?: unknown;
}

/** The routes of the sample: what an app built on nestjs-procore-auth typically has. */
@Controller()
export class ProcoreDemoController {
  constructor(
    private readonly procore: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
  ) {}

  /** Browser convenience: "signs in" as :user (a cookie; see sample-user.ts) and starts the connection. */
  @Get('login/:user')
  @HttpCode(302)
  login(@Param('user') user: string, @Res({ passthrough: true }) response: CookieResponse): void {
    const cookie = `sample_user=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Lax`;
    const set = response.setHeader?.bind(response) ?? response.header?.bind(response);
    set?.('set-cookie', cookie);
    set?.('location', '/procore/oauth/authorize?returnTo=/me');
  }

  /** Calls Procore's `GET /rest/v1.0/me` with the user's token: the module refreshes it when needed. */
  @Get('me')
  async me(@ProcoreToken() token: string): Promise<unknown> {
    const response = await fetch(`${this.options.apiBaseUrl}/rest/v1.0/me`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return response.json();
  }

  /** The connection's status and timestamps (never secrets). */
  @Get('status')
  async status(@Req() request: unknown): Promise<unknown> {
    const user = this.requireUser(request);
    return (await this.procore.getConnection(user)) ?? { ownerId: user, status: 'not_connected' };
  }

  /** Disconnects: revokes the grant at Procore and erases the stored tokens. */
  @Delete('connection')
  async disconnect(@Req() request: unknown): Promise<{ revoked: true }> {
    await this.procore.revoke(this.requireUser(request));
    return { revoked: true };
  }

  private requireUser(request: unknown): string {
    const user = sampleUser(request);
    if (!user)
      throw new UnauthorizedException(
        "Send an x-user-id header (the sample's stand-in for a login).",
      );
    return user;
  }
}
