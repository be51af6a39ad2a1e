import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Req,
  Res,
  UnauthorizedException,
} from '@nestjs/common';
import { ProcoreApi, ProcoreScopedClient, ProcoreTokenService } from 'nestjs-procore-auth';
import { sampleUser } from './sample-user.js';

interface CookieResponse {
  setHeader?(name: string, value: string): void;
  header?(name: string, value: string): void;
  redirect?: unknown;
}

/** The routes of the sample: what an app built on nestjs-procore-auth typically has. */
@Controller()
export class ProcoreDemoController {
  constructor(private readonly procore: ProcoreTokenService) {}

  /** Browser convenience: "signs in" as :user (a cookie; see sample-user.ts) and starts the connection. */
  @Get('login/:user')
  @HttpCode(302)
  login(@Param('user') user: string, @Res({ passthrough: true }) response: CookieResponse): void {
    const cookie = `sample_user=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Lax`;
    const set = response.setHeader?.bind(response) ?? response.header?.bind(response);
    set?.('set-cookie', cookie);
    set?.('location', '/procore/oauth/authorize?returnTo=/me');
  }

  /** Procore's `GET /rest/v1.0/me` for the signed-in user: token, refresh and 401 recovery are the module's. */
  @Get('me')
  me(@ProcoreApi() procore: ProcoreScopedClient): Promise<unknown> {
    return procore.get('/rest/v1.0/me');
  }

  /** The companies the user can see. */
  @Get('companies')
  companies(@ProcoreApi() procore: ProcoreScopedClient): Promise<unknown> {
    return procore.get('/rest/v1.0/companies');
  }

  /**
   * Every project of a company, through every page (`paginate()` follows Procore's `Link` header).
   * `:companyId` is validated as a positive integer (ids may exceed 2^53; they are never rounded).
   */
  @Get('companies/:companyId/projects')
  async projects(
    @ProcoreApi({ companyId: (req) => (req as { params: { companyId: string } }).params.companyId })
    procore: ProcoreScopedClient,
  ): Promise<{ count: number; projects: unknown[] }> {
    const projects: unknown[] = [];
    for await (const project of procore.paginate('/rest/v1.0/projects', { perPage: 100 })) {
      projects.push(project);
    }
    return { count: projects.length, projects };
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
