import 'reflect-metadata';
import { describe, it, expect } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';

@Injectable()
class Svc {
  hello() {
    return 'hi';
  }
}
@Module({ providers: [Svc], exports: [Svc] })
class M {}

describe('smoke', () => {
  it('boots nest', async () => {
    const ref = await Test.createTestingModule({ imports: [M] }).compile();
    expect(ref.get(Svc).hello()).toBe('hi');
    const ds = new DataSource({ type: 'postgres', url: 'postgres://postgres@127.0.0.1:5432/test' });
    await ds.initialize();
    expect(await ds.query('select 1 as x')).toEqual([{ x: 1 }]);
    await ds.destroy();
  });
});
