/**
 * The container entry (engine/main.ts) refuses to run an app other than the one the CDK stack
 * deployed: the stack's grants, alarms and dead-letter topic are named after it.
 */
import { describe, expect, it } from 'vitest';
import { spawnEngine } from './fixtures/engine-support.ts';
import { uniqueName } from './helpers.ts';

describe('engine/main.ts', () => {
  it.each([
    ['TRIBUTARY_APP', (app: string) => ({ TRIBUTARY_APP: `${app}-other` })],
    ['TRIBUTARY_DEAD_LETTER_TOPIC', (app: string) => ({ TRIBUTARY_APP: app, TRIBUTARY_DEAD_LETTER_TOPIC: `${app}.elsewhere` })],
  ])('exits with INVALID_CONFIG when %s names another app than the module it loaded', async (name, deployed) => {
    const app = uniqueName('main-app');
    const engine = spawnEngine({
      TRIBUTARY_TABLE: uniqueName('main-table'),
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/engine-reference-app.ts',
      ENGINE_FIXTURE_APP: app,
      ENGINE_FIXTURE_TOPIC: uniqueName('main-topic'),
      ...deployed(app),
    });
    const { code } = await engine.exited;
    expect(code).toBe(2);
    const line = engine.lines.map((l) => { try { return JSON.parse(l) as { code?: string; msg?: string }; } catch { return {}; } }).find((l) => l.code === 'INVALID_CONFIG');
    expect(line?.msg).toContain(name);
    expect(line?.msg).toContain('Rebuild the image');
  });

  it('runs when TRIBUTARY_APP and TRIBUTARY_DEAD_LETTER_TOPIC match the loaded app', async () => {
    const app = uniqueName('main-app');
    const engine = spawnEngine({
      TRIBUTARY_TABLE: uniqueName('main-table'),
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/engine-reference-app.ts',
      ENGINE_FIXTURE_APP: app,
      ENGINE_FIXTURE_TOPIC: uniqueName('main-topic'),
      TRIBUTARY_APP: app,
      TRIBUTARY_DEAD_LETTER_TOPIC: `${app}.dead-letter`,
    });
    // Past the check it goes on to its next step; whatever that does, it is not this refusal.
    await Promise.race([engine.running, engine.exited]);
    engine.child.kill('SIGKILL');
    await engine.exited;
    expect(engine.lines.some((l) => l.includes('Rebuild the image'))).toBe(false);
  });
});
