/**
 * The built package from plain Node (no ts-jest, no TypeScript): after
 * `npm run build`, `require('tfjs-norm')` resolves through package.json `main`
 * to CommonJS in dist/, registers the layers on import, and its `.d.ts` exist.
 * Builds dist/ first when it is missing or older than src/.
 */
import {execFileSync} from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {CATALOG} from './catalog';

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function newest(dir: string): number {
  return fs.readdirSync(dir, {withFileTypes: true}).reduce((m, d) => {
    const p = path.join(dir, d.name);
    return Math.max(m, d.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }, 0);
}

describe('the built package', () => {
  beforeAll(() => {
    const main = path.join(root, pkg.main);
    if (!fs.existsSync(main) || fs.statSync(main).mtimeMs < newest(path.join(root, 'src'))) {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], {cwd: root, stdio: 'inherit'});
    }
  }, 120000);

  it('points main/types at CommonJS JavaScript and declarations in dist/', () => {
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.types).toBe('dist/index.d.ts');
    expect(fs.existsSync(path.join(root, pkg.types))).toBe(true);
    expect(fs.readFileSync(path.join(root, pkg.main), 'utf8')).toContain('exports');
  });

  it('require()s from plain Node, registers its classes, and round-trips a model', () => {
    // Every catalog layer, through its factory, on [batch, 3, 4].
    const factories = CATALOG.map(info => [info.factory, info.inModel]);
    const script = `
      const tf = require('@tensorflow/tfjs');
      tf.enableProdMode();
      const tfn = require(${JSON.stringify(root)});
      (async () => {
        const model = tf.sequential({layers: [
          tf.layers.reshape({inputShape: [12], targetShape: [3, 4]}),
          ...${JSON.stringify(factories)}.map(([factory, args]) => tfn.layers[factory](args)),
        ]});
        let artifacts;
        await model.save(tf.io.withSaveHandler(async a => { artifacts = a; return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}}; }));
        const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
        const x = tf.tensor2d([[1, 2, 4, 0, 3, 1, 5, 2, 2, 0, 1, 4], [3, 1, 0, 2, 2, 5, 1, 0, 4, 3, 1, 2]]);
        const same = Array.from(model.predict(x).dataSync()).join() === Array.from(loaded.predict(x).dataSync()).join();
        console.log(JSON.stringify({
          exports: Object.keys(tfn).sort(),
          classes: loaded.layers.map(l => l.getClassName()),
          same,
        }));
      })().catch(e => { console.error(e); process.exit(1); });`;
    const out = execFileSync(process.execPath, ['-e', script], {cwd: root, encoding: 'utf8'});
    const result = JSON.parse(out.trim().split('\n').pop()!);
    expect(result.same).toBe(true);
    expect(result.classes).toEqual(['Reshape', ...CATALOG.map(info => info.name)]);
    for (const name of [...CATALOG.map(info => info.name),
                        'layers', 'ops', 'ValueError', 'fileSystem', 'readSafetensors', 'loadTorchStateDict']) {
      expect(result.exports).toContain(name);
    }
  }, 60000);
});
