/**
 * Every layer against PyTorch (float64 reference, test/fixtures/generate.py):
 * three training steps (output, dx, dgamma, dbeta, running statistics,
 * num_batches_tracked), then one inference forward. The check itself lives in
 * test/fixture_runner.ts, which the browser suite (test/browser/) runs too.
 */
import {describeBackends, loadTorchFixtures, noLeak} from './harness';
import {FIXTURE_LAYER_NAMES, runFixtureCase, skipReason, toleranceFor} from './fixture_runner';

const fixtures = loadTorchFixtures();
const skipped = fixtures.cases.filter(c => skipReason(c) !== null);
const cases = fixtures.cases.filter(c => skipReason(c) === null);
for (const reason of new Set(skipped.map(skipReason))) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED ${skipped.filter(c => skipReason(c) === reason).length} fixture cases: ${reason}`);
}

describeBackends(`PyTorch ${fixtures.torchVersion} fixtures`, backend => {
  it('covers every fixture layer', () => {
    for (const name of FIXTURE_LAYER_NAMES) {
      expect(fixtures.cases.filter(c => c.layer === name).length).toBeGreaterThanOrEqual(7);
    }
    for (const name of ['BatchNorm', 'InstanceNorm', 'GroupNorm', 'LayerNorm']) {
      expect(cases.filter(c => c.layer === name).length).toBeGreaterThanOrEqual(8);
    }
  });

  for (const c of cases) {
    it(c.name, async () => {
      const r = await noLeak(() => runFixtureCase(c, toleranceFor(backend), {failFast: true}), c.name);
      if (r.failures.length) throw new Error(r.failures.join('\n'));
    });
  }
});
