/**
 * The import path of a Node app: it imports `@tensorflow/tfjs-node` (or
 * `@tensorflow/tfjs`) itself, then tfjs-norm, and mixes our layers into its
 * own `tf.sequential`. tfjs-norm imports `@tensorflow/tfjs`, which tfjs-node
 * re-exports, so both must share one engine, one backend, one Tensor class and
 * one serialization registry. Runs with tfjs-node when it resolves (its
 * install downloads libtensorflow, so it is not a dev dependency), otherwise
 * with @tensorflow/tfjs, saying so.
 *
 * Both our source (src/) and, when built and current, the package entry
 * (package.json `main`, dist/) are imported as the app would.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as tfjs from '@tensorflow/tfjs';

const TFJS_NODE = '@tensorflow/tfjs-node';

function tfjsNodeMissing(): string | null {
  try {
    require.resolve(TFJS_NODE);
    return null;
  } catch (e) {
    return `${TFJS_NODE} is not installed (its install step downloads libtensorflow)`;
  }
}

const nodeMissing = tfjsNodeMissing();
const appTfName = nodeMissing ? '@tensorflow/tfjs' : TFJS_NODE;
if (nodeMissing) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED the ${TFJS_NODE} import path: ${nodeMissing}; testing the same path with @tensorflow/tfjs.`);
}

/** Why the built package entry cannot be tested (absent or older than src/), or null. */
function packageEntryProblem(): string | null {
  const root = path.join(__dirname, '..');
  const main = path.join(root, require(path.join(root, 'package.json')).main);
  if (!fs.existsSync(main)) return `${path.relative(root, main)} is not built (npm run build)`;
  const newestSrc = (dir: string): number => fs.readdirSync(dir, {withFileTypes: true}).reduce((m, d) => {
    const p = path.join(dir, d.name);
    return Math.max(m, d.isDirectory() ? newestSrc(p) : fs.statSync(p).mtimeMs);
  }, 0);
  if (fs.statSync(main).mtimeMs < newestSrc(path.join(root, 'src'))) {
    return `${path.relative(root, main)} is older than src/ (npm run build)`;
  }
  return null;
}

const entries: Array<[string, string, string | null]> = [
  ['src/', path.join(__dirname, '..', 'src'), null],
  ['the package entry', path.join(__dirname, '..'), packageEntryProblem()],
];

// The app's own tf, imported first, as an app would.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const tf: typeof tfjs = require(appTfName);

for (const [label, modulePath, problem] of entries) {
  const title = `an app importing ${appTfName}, then tfjs-norm (${label})`;
  if (problem) {
    describe(title, () => {
      it('is skipped (see the printed reason)', () => {
        // eslint-disable-next-line no-console
        console.warn(`SKIPPED ${title}: ${problem}`);
      });
    });
    continue;
  }

  describe(title, () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const tfn: typeof import('../src') = require(modulePath);

    beforeAll(async () => {
      await tf.ready();
    });

    it('runs on the app\'s backend and engine', async () => {
      expect(tf.getBackend()).toBe(nodeMissing ? 'cpu' : 'tensorflow');
      const before = tf.memory().numTensors;
      const x = tf.randomNormal([4, 3, 5]);
      const y = tfn.ops.layerNorm(x, {axis: -1});
      expect(y).toBeInstanceOf(tf.Tensor);
      // Registered with the app's engine: counted by its memory() and freed by its dispose().
      expect(tf.memory().numTensors).toBe(before + 2);
      const row = Array.from((await y.data()).slice(0, 5));
      const mean = row.reduce((s, v) => s + v, 0) / 5;
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      tf.dispose([x, y]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('trains inside the app\'s tf.sequential and round-trips through the app\'s loader', async () => {
      const before = tf.memory().numTensors;
      const model = tf.sequential({layers: [
        tf.layers.dense({inputShape: [6], units: 8}),
        new tfn.BatchNorm(),
        new tfn.LayerNorm(),
        tf.layers.reshape({targetShape: [2, 4]}),
        new tfn.GroupNorm({numGroups: 2}),
        tf.layers.flatten(),
        tf.layers.dense({units: 1}),
      ]});
      model.compile({optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError'});
      const xs = tf.randomNormal([32, 6], 0, 1, 'float32', 1);
      const ys = tf.sum(xs, 1, true);
      const h = await model.fit(xs, ys, {epochs: 5, batchSize: 8, verbose: 0});
      const loss = h.history.loss as number[];
      expect(loss.every(Number.isFinite)).toBe(true);
      expect(loss[loss.length - 1]).toBeLessThan(loss[0]);

      let artifacts: tfjs.io.ModelArtifacts | null = null;
      await model.save(tf.io.withSaveHandler(async a => {
        artifacts = a;
        return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
      }));
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
      expect(loaded.layers.map(l => l.getClassName())).toEqual(
        ['Dense', 'BatchNorm', 'LayerNorm', 'Reshape', 'GroupNorm', 'Flatten', 'Dense']);
      const [p1, p2] = [model.predict(xs) as tfjs.Tensor, loaded.predict(xs) as tfjs.Tensor];
      expect(Array.from(await p2.data())).toEqual(Array.from(await p1.data()));

      if (!nodeMissing) {
        // tfjs-node's file:// handler, as a Node app saves models.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-norm-'));
        await model.save(`file://${dir}`);
        const fromDisk = await tf.loadLayersModel(`file://${dir}/model.json`);
        const p3 = fromDisk.predict(xs) as tfjs.Tensor;
        expect(Array.from(await p3.data())).toEqual(Array.from(await p1.data()));
        tf.dispose(p3);
        fromDisk.dispose();
        fs.rmSync(dir, {recursive: true, force: true});
      }

      tf.dispose([p1, p2, xs, ys]);
      model.dispose();
      loaded.dispose();
      (model.optimizer as tfjs.Optimizer).dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
