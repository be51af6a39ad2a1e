#!/usr/bin/env node
// Compiles every ```ts block of README.md, so the docs cannot drift from the code.
//
// Each block becomes one module under .tmp/readme-blocks/ (regenerated on every run, not committed)
// and `tsc --noEmit -p docs-check/tsconfig.json` checks them all, with `nestjs-procore-auth` and
// `nestjs-procore-auth/testing` resolved to lib/ (paths of the root tsconfig.json). A block that
// is a complete file compiles as it is. A fragment (a handler method, an options object, a few
// statements) gets the prelude declared for it in FRAGMENTS below: the imports and declarations
// it assumes, and optionally a class around it. Blocks are keyed by their section heading and
// their position in it (`events#1`): a key that matches no block fails the check, so a moved or
// removed block is noticed. Errors are reported at their README.md line.
//
// Usage: node docs-check/check-readme.mjs   (npm run check:readme; .ci/run runs it)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
// An optional argument checks another copy of the README (used to prove that a broken block fails).
const readmePath = process.argv[2] ? resolve(process.argv[2]) : join(root, 'README.md');
// Generated, so in .tmp/ (ignored by git, ESLint and Prettier).
const blocksDir = join(root, '.tmp', 'readme-blocks');

const nest = `import { Body, Controller, Get, Injectable, Module, Param, Query, UseGuards, type CanActivate } from '@nestjs/common';`;
const pkg = (names) => `import { ${names} } from 'nestjs-procore-auth';`;

/** The stores the README's "Writing a store" is about, as a user would have written them. */
const REDIS_STORES = [
  pkg('ProcoreOAuthStateStore, ProcoreTokenStore'),
  `interface RedisClient { quit(): Promise<void> }`,
  `type RedisProcoreTokenStore = ProcoreTokenStore & { close(): Promise<void> };`,
  `declare const RedisProcoreTokenStore: new (redis?: RedisClient) => RedisProcoreTokenStore;`,
  `declare const RedisProcoreStateStore: new (redis?: RedisClient) => ProcoreOAuthStateStore;`,
].join('\n');

/**
 * What each fragment assumes. `prelude`: code before the block; `wrap: 'class'`: the block is
 * class members (handlers, a constructor), put inside `@Controller() class ReadmeBlock { ... }`.
 */
const FRAGMENTS = {
  'nestjs-procore-auth#1': {
    prelude: [nest, pkg('ProcoreToken')].join('\n'),
    wrap: 'class',
  },
  'procoretoken#1': {
    prelude: [nest, pkg('ProcoreToken')].join('\n'),
    wrap: 'class',
  },
  'procoreauthguard-and-the-401-bodies#1': {
    prelude: [nest, pkg('ProcoreAuthGuard')].join('\n'),
    // A decorator line alone: the class it decorates stands in for the user's controller.
    suffix: '@Controller()\nclass ProjectsController {}',
  },
  'putting-the-oauth-routes-behind-your-guards#1': {
    prelude: [
      `import { ConfigModule, type ConfigType } from '@nestjs/config';`,
      nest,
      pkg('ProcoreAuthModule, procoreConfig'),
      `@Module({}) class SessionsModule {}`,
      `@Injectable() class SessionGuard implements CanActivate { canActivate() { return true; } }`,
    ].join('\n'),
  },
  'putting-the-oauth-routes-behind-your-guards#2': {
    prelude: [
      nest,
      pkg('ProcoreAuthModule, type ProcoreAuthModuleOptions'),
      `declare const options: ProcoreAuthModuleOptions;`,
      `@Injectable() class JwtGuard implements CanActivate { canActivate() { return true; } }`,
    ].join('\n'),
  },
  'putting-the-oauth-routes-behind-your-guards#3': {
    // Browser code: the page's globals.
    prelude: [
      `declare const jwt: string;`,
      `declare const window: { location: { href: string } };`,
      `declare function fetch(url: string, init: { headers: Record<string, string> }): Promise<{ json(): Promise<any> }>;`,
    ].join('\n'),
  },
  'graphql-resolvers#1': {
    prelude: [
      `import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';`,
      `import { GraphQLModule, Query, Resolver } from '@nestjs/graphql';`,
      `import { UseGuards } from '@nestjs/common';`,
      pkg('ProcoreApi, ProcoreAuthGuard, type ProcoreScopedClient'),
    ].join('\n'),
  },
  'service-accounts#1': {
    prelude: [
      pkg('ProcoreAuthModule, type ProcoreAuthModuleOptions'),
      `declare const options: ProcoreAuthModuleOptions;`,
    ].join('\n'),
  },
  'calling-procore-s-api-procoreapi-and-procoreclient#1': {
    prelude: [nest, pkg('ProcoreApi, type ProcoreScopedClient')].join('\n'),
    wrap: 'class',
  },
  'events#1': {
    prelude: [
      nest,
      pkg('ProcoreAuthEvents, ProcoreAuthEventType'),
      `declare function notifyUser(ownerId: string, cause: string | undefined): void;`,
    ].join('\n'),
    wrap: 'class',
  },
  'who-the-owner-is-procorerequestownerresolver#1': {
    prelude: [
      `import { Injectable } from '@nestjs/common';`,
      `import { Test } from '@nestjs/testing';`,
      pkg('ProcoreRequestOwnerResolver'),
      `declare class AppModule {}`,
    ].join('\n'),
  },
  'writing-a-store#1': {
    prelude: [
      pkg('ProcoreAuthModule, type ProcoreAuthModuleOptions'),
      REDIS_STORES,
      `declare const options: ProcoreAuthModuleOptions;`,
      `declare class RedisModule {}`,
    ].join('\n'),
  },
  'writing-a-store#2': {
    prelude: [REDIS_STORES, `declare const redis: RedisClient;`].join('\n'),
  },
  'storage-and-encryption#1': {
    prelude: [
      `import { NestFactory } from '@nestjs/core';`,
      pkg('ProcoreKeyRotationService'),
      `declare class AppModule {}`,
    ].join('\n'),
  },
};

function slug(heading) {
  return heading
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** The ```ts blocks of the README: key, first code line (1-based) and code (dedented). */
function extractBlocks(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  const perSection = new Map();
  let section = 'readme';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (heading) {
      section = slug(heading[1]);
      continue;
    }
    const fence = /^(\s*)(`{3,})(\S*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const [, indent, ticks, lang] = fence;
    let end = i + 1;
    while (end < lines.length && lines[end].trim() !== ticks) end++;
    if (lang === 'ts' || lang === 'typescript') {
      const n = (perSection.get(section) ?? 0) + 1;
      perSection.set(section, n);
      const code = lines
        .slice(i + 1, end)
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()))
        .join('\n');
      blocks.push({ key: `${section}#${n}`, line: i + 2, code });
    }
    i = end;
  }
  return blocks;
}

function writeBlocks(blocks) {
  rmSync(blocksDir, { recursive: true, force: true });
  mkdirSync(blocksDir, { recursive: true });
  return blocks.map((block, index) => {
    const fragment = FRAGMENTS[block.key] ?? {};
    const head = [
      `// README.md line ${block.line} (${block.key}): generated by docs-check/check-readme.mjs; edit README.md.`,
      ...(fragment.prelude ? [fragment.prelude] : []),
      ...(fragment.wrap === 'class' ? ['@Controller()', 'export class ReadmeBlock {'] : []),
    ];
    const tail = [
      ...(fragment.wrap === 'class' ? ['}'] : []),
      ...(fragment.suffix ? [fragment.suffix] : []),
      'export {};',
      '',
    ];
    // A block that names its file (`// app.module.ts` on its first line) is written under that
    // name, so another block can import it (`import { AppModule } from './app.module.js'`).
    const named = /^\/\/ ([\w.-]+)\.ts\s*$/.exec(block.code.split('\n')[0]);
    const name = named
      ? named[1]
      : `${String(index + 1).padStart(2, '0')}-${block.key.replace('#', '-')}`;
    const file = join(blocksDir, `${name}.ts`);
    const text = [...head, block.code, ...tail].join('\n');
    writeFileSync(file, text);
    const firstCodeLine = head.join('\n').split('\n').length + 1;
    return { ...block, file, firstCodeLine, lines: block.code.split('\n').length };
  });
}

/** Rewrites `blocks/NN-x.ts(l,c): error ...` to the README line when the error is in the block. */
function toReadmeLocation(output, written) {
  return output
    .split('\n')
    .map((line) => {
      const match = /^(.*?\.ts)\((\d+),(\d+)\): (.*)$/.exec(line);
      if (!match) return line;
      const block = written.find((candidate) => join(root, match[1]) === candidate.file);
      if (!block) return line;
      const offset = Number(match[2]) - block.firstCodeLine;
      const where =
        offset >= 0 && offset < block.lines
          ? `${relative(process.cwd(), readmePath)}:${block.line + offset}:${match[3]}`
          : `${relative(root, block.file)}:${match[2]}:${match[3]} (the prelude of README.md:${block.line})`;
      return `${where} [${block.key}] ${match[4]}`;
    })
    .join('\n');
}

const blocks = extractBlocks(readFileSync(readmePath, 'utf8'));
const keys = new Set(blocks.map((block) => block.key));
const stale = Object.keys(FRAGMENTS).filter((key) => !keys.has(key));
if (stale.length > 0) {
  console.error(
    `docs-check: no README block for ${stale.join(', ')}: a block was moved or removed; update FRAGMENTS in docs-check/check-readme.mjs (blocks now: ${[...keys].join(', ')}).`,
  );
  process.exit(1);
}
const written = writeBlocks(blocks);
const tsc = spawnSync(
  process.execPath,
  [
    join(root, 'node_modules/typescript/bin/tsc'),
    '-p',
    join(here, 'tsconfig.json'),
    '--noEmit',
    '--pretty',
    'false',
  ],
  { cwd: root, encoding: 'utf8' },
);
const output = `${tsc.stdout}${tsc.stderr}`.trim();
if (tsc.status !== 0) {
  console.error(toReadmeLocation(output, written));
  console.error(
    `docs-check: README.md TypeScript blocks do not compile (${written.length} blocks checked).`,
  );
  process.exit(1);
}
console.log(`docs-check: all ${written.length} TypeScript blocks of README.md compile.`);
