import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Get, UseGuards, type INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ApiProcoreAuth,
  ProcoreApi,
  ProcoreAuthGuard,
  ProcoreAuthModule,
  ProcoreToken,
  procoreAuthEntities,
  type ProcoreScopedClient,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { RecordingLogger, fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

@Controller('projects')
class ProjectsController {
  @ApiProcoreAuth()
  @UseGuards(ProcoreAuthGuard)
  @Get('token')
  token(@ProcoreToken() token: string) {
    return { ok: token.length > 0 };
  }

  @ApiProcoreAuth({ apiCalls: true })
  @Get('me')
  me(@ProcoreApi() procore: ProcoreScopedClient) {
    return procore.get('/rest/v1.0/me');
  }

  @Get('public')
  open() {
    return { ok: true };
  }
}

@ApiProcoreAuth()
@Controller('reports')
class ReportsController {
  @Get()
  list(@ProcoreToken() token: string) {
    return { ok: token.length > 0 };
  }
}

type Operation = {
  parameters?: { name: string; in: string; required?: boolean }[];
  responses: Record<string, { description?: string; content?: Record<string, { schema: Schema }> }>;
};
type Schema = { properties: Record<string, { enum?: string[] }>; required: string[] };

describe('OpenAPI description with @nestjs/swagger', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;
  let document: OpenAPIObject;

  beforeAll(async () => {
    database = await createTestDatabase('swagger');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ],
      controllers: [ProjectsController, ReportsController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    // As an app's main.ts does: the document is built before listen().
    document = SwaggerModule.createDocument(app, new DocumentBuilder().setTitle('app').build());
  });
  afterAll(async () => {
    await app.close();
    await fake.close();
    await database.drop();
  });

  const operation = (path: string) => document.paths[path]?.get as unknown as Operation;
  const schemaOf = (op: Operation, status: number) =>
    op.responses[String(status)]?.content?.['application/json']?.schema as Schema;

  it('documents the authorize route: returnTo, 302 (200 { url } for JSON), and 400/401/503 in the error body shape', () => {
    const authorize = operation('/procore/oauth/authorize');

    expect(authorize.parameters).toEqual([
      expect.objectContaining({ name: 'returnTo', in: 'query', required: false }),
    ]);
    expect(Object.keys(authorize.responses).sort()).toEqual(['200', '302', '400', '401', '503']);
    expect(schemaOf(authorize, 200).required).toEqual(['url']);
    expect(schemaOf(authorize, 401).required).toEqual(
      expect.arrayContaining(['statusCode', 'error', 'reason', 'message', 'authorizePath']),
    );
    expect(schemaOf(authorize, 400).properties.reason?.enum).toEqual(['invalid_return_to']);
  });

  it('documents the callback route: code, state, error, the connection answer and every 400 reason', () => {
    const callback = operation('/procore/oauth/callback');

    expect(callback.parameters?.map((p) => `${p.in}:${p.name}:${p.required}`).sort()).toEqual([
      'query:code:false',
      'query:error:false',
      'query:state:false',
    ]);
    expect(Object.keys(callback.responses).sort()).toEqual(['200', '302', '400', '503']);
    expect(schemaOf(callback, 200).properties).toHaveProperty('connected');
    expect(schemaOf(callback, 400).properties.reason?.enum).toEqual(
      expect.arrayContaining(['unknown_state', 'expired_state', 'browser_mismatch']),
    );
  });

  it('@ApiProcoreAuth() adds 401 (with its reasons) and 503 to a guarded route', () => {
    const token = operation('/projects/token');

    expect(Object.keys(token.responses)).toEqual(expect.arrayContaining(['401', '503']));
    expect(schemaOf(token, 401).properties.reason?.enum).toEqual([
      'no_owner',
      'not_connected',
      'reauthorization_required',
    ]);
    expect(schemaOf(token, 503).properties.reason?.enum).toContain('procore_unavailable');
  });

  it('@ApiProcoreAuth({ apiCalls: true }) also adds 403, 429 and 502; on a class it covers every route', () => {
    expect(Object.keys(operation('/projects/me').responses)).toEqual(
      expect.arrayContaining(['401', '403', '429', '502', '503']),
    );
    expect(Object.keys(operation('/reports').responses)).toEqual(
      expect.arrayContaining(['401', '503']),
    );
    expect(Object.keys(operation('/projects/public').responses)).not.toContain('401');
  });

  it('documents a route decorated after the module was created (e.g. a controller built later)', () => {
    class LateController {
      @ApiProcoreAuth()
      handler() {
        return undefined;
      }
    }

    const responses = Reflect.getMetadata(
      'swagger/apiResponse',
      LateController.prototype.handler,
    ) as Record<string, unknown>;
    expect(Object.keys(responses).sort()).toEqual(['401', '503']);
  });
});
