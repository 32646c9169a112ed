/**
 * Numerical robustness against PyTorch: inputs with a large common offset
 * (1e4 plus unit noise). Our float32 error must be no worse than PyTorch's own
 * float32 error on the same input (recorded by test/fixtures/robust.py), and
 * within 1e-5 absolute regardless (measured: 1.2e-7 on cpu, 8.6e-7 on wasm) (PyTorch 1.13's CPU GroupNorm uses
 * E[x^2] - E[x]^2 and is off by ~1e3 on this input; we are not).
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import {LAYERS, describeBackends, disposeLayer, noLeak} from './harness';

interface RobustCase {
  name: string;
  layer: string;
  args: Record<string, unknown>;
  inputShape: number[];
  x: number[];
  y: number[];
  torchFloat32MaxError: number;
}

const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'robust.json'), 'utf8')) as
    {torchVersion: string; cases: RobustCase[]};

describeBackends('large common offset (1e4 + unit noise)', backend => {
  for (const c of fixture.cases) {
    it(c.name, async () => {
      await noLeak(() => {
        const layer = new LAYERS[c.layer]({...c.args});
        const x = tf.tensor(c.x, c.inputShape);
        const y = layer.apply(x, {training: true}) as tf.Tensor;
        const v = y.dataSync();
        let err = 0;
        for (let i = 0; i < v.length; i++) err = Math.max(err, Math.abs(v[i] - c.y[i]));
        // eslint-disable-next-line no-console
        console.log(`${c.name} [${backend}]: max error ${err.toExponential(2)}, ` +
                    `PyTorch ${fixture.torchVersion} float32 ${c.torchFloat32MaxError.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(c.torchFloat32MaxError);
        expect(err).toBeLessThanOrEqual(1e-5);
        tf.dispose([x, y]);
        disposeLayer(layer);
      });
    });
  }
});
