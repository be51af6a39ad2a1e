import { Controller, Get } from '@nestjs/common';
import { ProcoreToken } from 'nestjs-procore-auth';

@Controller()
export class MeController {
  /** Procore's `/rest/v1.0/me` for the caller, with the token the decorator hands out. */
  @Get('me')
  async me(@ProcoreToken() token: string): Promise<unknown> {
    const response = await fetch(`${process.env.PROCORE_API_BASE_URL}/rest/v1.0/me`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    return response.json();
  }
}
