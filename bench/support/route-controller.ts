import {
  Controller,
  createParamDecorator,
  Get,
  Injectable,
  type PipeTransform,
} from '@nestjs/common';
import { ProcoreToken } from 'nestjs-procore-auth';

/** The same tiny body from every route, so the only difference is the parameter. */
const BODY = { ok: true };

/**
 * A control for route-overhead: a custom parameter decorator with an async pipe, the same shape
 * as `@ProcoreToken()` had (createParamDecorator + an injectable pipe), doing no work. It separates
 * what Nest's parameter/pipe machinery costs from what the library costs.
 */
@Injectable()
class ControlPipe implements PipeTransform<unknown, Promise<string>> {
  async transform(): Promise<string> {
    return 'control';
  }
}
const ControlParam = () => createParamDecorator(() => null)(undefined, ControlPipe);

/**
 * The cheapest parameter Nest has: a custom decorator whose factory returns a constant, no pipe.
 * What any route with a parameter pays before the library does anything.
 */
const ConstantParam = createParamDecorator(() => 'constant');

/** The routes route-overhead and route-interleaved compare. */
@Controller()
export class RouteOverheadController {
  @Get('control')
  control(@ControlParam() value: string) {
    void value;
    return BODY;
  }

  /** Resolves a valid Procore token for the request's owner; does not return it. */
  @Get('with')
  with(@ProcoreToken() token: string) {
    void token;
    return BODY;
  }

  @Get('without')
  without() {
    return BODY;
  }

  @Get('param')
  param(@ConstantParam() value: string) {
    void value;
    return BODY;
  }

  /** `/without` again, under another path: an A/A comparison shows what noise alone gives. */
  @Get('again')
  again() {
    return BODY;
  }
}
