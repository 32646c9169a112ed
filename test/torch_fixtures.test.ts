/**
 * Every layer against PyTorch (float64 reference, test/fixtures/generate.py):
 * three training steps (output, dx, dgamma, dbeta, running statistics,
 * num_batches_tracked), then one inference forward. The check itself lives in
 * test/fixture_runner.ts, which the browser suite (test/browser/) runs too.
 */
import {CATALOG, describeBackends, loadTorchFixtures, noLeak} from './harness';
import {runFixtureCase, toleranceFor} from './fixture_runner';

const fixtures = loadTorchFixtures();

describeBackends(`PyTorch ${fixtures.torchVersion} fixtures`, backend => {
  it('covers every catalog layer, and only those', () => {
    for (const info of CATALOG) {
      expect(fixtures.cases.filter(c => c.layer === info.name).length).toBeGreaterThanOrEqual(info.torchFixtures);
    }
    expect(fixtures.cases.filter(c => !CATALOG.some(info => info.name === c.layer)).map(c => c.name)).toEqual([]);
  });

  for (const c of fixtures.cases) {
    it(c.name, async () => {
      const r = await noLeak(() => runFixtureCase(c, toleranceFor(backend), {failFast: true}), c.name);
      if (r.failures.length) throw new Error(r.failures.join('\n'));
    });
  }
});
