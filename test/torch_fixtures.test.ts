/**
 * Every layer against PyTorch (float64 reference, test/fixtures/generate.py):
 * three training steps (output, dx, dgamma, dbeta, running statistics,
 * num_batches_tracked), then one inference forward.
 */
import * as tf from '@tensorflow/tfjs';
import {
  FixtureCase, LAYERS, describeBackends, disposeAll, disposeLayer, expectClose, layerFromCase, loadTorchFixtures, noLeak, trainStep, weight,
} from './harness';

const fixtures = loadTorchFixtures();
const cases = fixtures.cases.filter(c => c.layer in LAYERS);

/**
 * PyTorch 1.13 never increments InstanceNorm's num_batches_tracked (and rejects
 * momentum None for it); ours counts batches like BatchNorm so that
 * `momentum: null` can average cumulatively (README, "Semantics").
 */
function expectedBatchCount(c: FixtureCase, stepIndex: number, torchValue: number | null): number | null {
  if (c.layer === 'InstanceNorm' && torchValue != null) return stepIndex + 1;
  return torchValue;
}

describeBackends(`PyTorch ${fixtures.torchVersion} fixtures`, () => {
  it('covers every core layer', () => {
    for (const name of Object.keys(LAYERS)) {
      expect(cases.filter(c => c.layer === name).length).toBeGreaterThanOrEqual(7);
    }
  });

  for (const c of cases) {
    it(c.name, async () => {
      await noLeak(() => {
        const layer = layerFromCase(c);
        c.steps.forEach((s, i) => {
          const x = tf.tensor(s.x, c.inputShape);
          const dy = tf.tensor(s.dy, c.inputShape);
          const r = trainStep(layer, x, dy);
          expectClose(r.y, s.y, `step ${i} output`);
          expectClose(r.dx, s.dx, `step ${i} dx`);
          if (s.dgamma) expectClose(r.dgamma!, s.dgamma, `step ${i} dgamma`);
          else expect(r.dgamma).toBeNull();
          if (s.dbeta) expectClose(r.dbeta!, s.dbeta, `step ${i} dbeta`);
          else expect(r.dbeta).toBeNull();
          if (s.runningMean) {
            expectClose(weight(layer, 'moving_mean')!.read(), s.runningMean, `step ${i} running mean`);
            expectClose(weight(layer, 'moving_variance')!.read(), s.runningVar!, `step ${i} running var`);
            expect(weight(layer, 'num_batches_tracked')!.read().dataSync()[0])
                .toBe(expectedBatchCount(c, i, s.numBatchesTracked));
          } else {
            expect(weight(layer, 'moving_mean')).toBeNull();
          }
          disposeAll(x, dy, r.y, r.dx, r.dgamma, r.dbeta);
        });
        const x = tf.tensor(c.eval.x, c.inputShape);
        const y = layer.apply(x) as tf.Tensor;
        expectClose(y, c.eval.y, 'inference output');
        disposeAll(x, y);
        disposeLayer(layer);
      }, c.name);
    });
  }
});
