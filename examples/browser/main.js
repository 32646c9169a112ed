/* global tf, tfnorm */
// tfjs-norm browser example: trains a small classifier with tfjs-norm's
// BatchNorm and LayerNorm on the GPU (webgl) and draws the loss as it goes.
// Options in the URL: ?backend=webgl|webgpu|wasm|cpu&epochs=40
'use strict';

const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') || 'webgl';
const EPOCHS = Number(params.get('epochs') || 40);
const LOSS_COLOR = '#7048e8';
const CLASS_COLORS = ['#1c7ed6', '#e8590c'];
const CLASS_TINTS = ['#d0ebff', '#ffe8cc'];

const $ = id => document.getElementById(id);

/** Two interleaving half circles with noise; a seeded generator so every run sees the same data. */
function twoMoons(n, noise, seed) {
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) % 4294967296) / 4294967296);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const points = [];
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    const t = Math.PI * rand();
    const x = label === 0 ? Math.cos(t) : 1 - Math.cos(t);
    const y = label === 0 ? Math.sin(t) : 0.5 - Math.sin(t);
    points.push({x: x + noise * gauss(), y: y + noise * gauss(), label});
  }
  return points;
}

const VIEW = {x0: -1.5, x1: 2.5, y0: -1.2, y1: 1.7};

function buildModel() {
  return tf.sequential({layers: [
    tf.layers.dense({inputShape: [2], units: 32}),
    tfnorm.layers.batchNorm(),                  // PyTorch's BatchNorm1d: momentum 0.1, epsilon 1e-5
    tf.layers.activation({activation: 'relu'}),
    tf.layers.dense({units: 32}),
    tfnorm.layers.layerNorm(),                  // PyTorch's LayerNorm over the last axis
    tf.layers.activation({activation: 'relu'}),
    tf.layers.dense({units: 1, activation: 'sigmoid'}),
  ]});
}

function drawLoss(losses) {
  const c = $('loss-canvas');
  const g = c.getContext('2d');
  const pad = {l: 46, r: 12, t: 12, b: 28};
  const w = c.width - pad.l - pad.r;
  const h = c.height - pad.t - pad.b;
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = '#adb5bd';
  g.lineWidth = 1;
  g.strokeRect(pad.l, pad.t, w, h);
  const max = Math.max(...losses, 1e-6);
  g.fillStyle = '#495057';
  g.font = '11px sans-serif';
  g.fillText(max.toFixed(2), 4, pad.t + 10);
  g.fillText('0', 30, pad.t + h);
  g.fillText(`epoch ${losses.length} / ${EPOCHS}`, pad.l, c.height - 8);
  g.strokeStyle = LOSS_COLOR;
  g.lineWidth = 3;
  g.beginPath();
  losses.forEach((l, i) => {
    const x = pad.l + (EPOCHS > 1 ? (i / (EPOCHS - 1)) * w : 0);
    const y = pad.t + h - (l / max) * h;
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}

async function drawPredictions(model, points) {
  const c = $('prediction-canvas');
  const g = c.getContext('2d');
  const N = 56;
  const grid = [];
  for (let j = 0; j < N; j++) {
    for (let i = 0; i < N; i++) {
      grid.push(VIEW.x0 + (i + 0.5) / N * (VIEW.x1 - VIEW.x0), VIEW.y1 - (j + 0.5) / N * (VIEW.y1 - VIEW.y0));
    }
  }
  const probs = tf.tidy(() => model.predict(tf.tensor2d(grid, [N * N, 2])));
  const p = await probs.data();
  probs.dispose();
  const cell = c.width / N;
  for (let k = 0; k < N * N; k++) {
    g.fillStyle = CLASS_TINTS[p[k] > 0.5 ? 1 : 0];
    g.fillRect((k % N) * cell, Math.floor(k / N) * cell, cell + 1, cell + 1);
  }
  for (const pt of points) {
    const px = (pt.x - VIEW.x0) / (VIEW.x1 - VIEW.x0) * c.width;
    const py = (VIEW.y1 - pt.y) / (VIEW.y1 - VIEW.y0) * c.height;
    g.fillStyle = CLASS_COLORS[pt.label];
    g.beginPath();
    g.arc(px, py, 3, 0, 2 * Math.PI);
    g.fill();
  }
}

async function main() {
  await tf.setBackend(BACKEND);
  await tf.ready();
  $('backend').textContent = tf.getBackend();
  if (tf.getBackend() !== BACKEND) throw new Error(`backend ${BACKEND} did not start (running on ${tf.getBackend()})`);

  const points = twoMoons(256, 0.12, 7);
  const xs = tf.tensor2d(points.map(p => [p.x, p.y]));
  const ys = tf.tensor2d(points.map(p => [p.label]));
  const model = buildModel();
  model.compile({optimizer: tf.train.adam(0.01), loss: 'binaryCrossentropy', metrics: ['accuracy']});

  const losses = [];
  const t0 = performance.now();
  document.body.dataset.state = 'training';
  await model.fit(xs, ys, {
    epochs: EPOCHS,
    batchSize: 32,
    shuffle: true,
    callbacks: {
      onEpochEnd: async (epoch, logs) => {
        losses.push(logs.loss);
        drawLoss(losses);
        $('status').textContent = `Training on ${tf.getBackend()}: epoch ${epoch + 1} / ${EPOCHS}, loss ${logs.loss.toFixed(4)}`;
        await tf.nextFrame();
      },
    },
  });
  const seconds = (performance.now() - t0) / 1000;

  // Inference mode: BatchNorm uses its running statistics.
  const probs = model.predict(xs);
  const p = await probs.data();
  probs.dispose();
  const correct = points.filter((pt, i) => (p[i] > 0.5 ? 1 : 0) === pt.label).length;
  const accuracy = correct / points.length;
  await drawPredictions(model, points);

  const rows = [0, 1, 2, 3, 4, 5].map(i => points[i * 37]);
  $('predictions').querySelector('tbody').innerHTML = rows.map(pt => {
    const i = points.indexOf(pt);
    return `<tr><td>${pt.x.toFixed(2)}</td><td>${pt.y.toFixed(2)}</td><td>${pt.label}</td><td>${p[i].toFixed(3)}</td></tr>`;
  }).join('');
  $('first-loss').textContent = losses[0].toFixed(4);
  $('final-loss').textContent = losses[losses.length - 1].toFixed(4);
  $('accuracy').textContent = `${(100 * accuracy).toFixed(1)} %`;
  $('train-time').textContent = `${seconds.toFixed(1)} s for ${EPOCHS} epochs`;
  $('status').textContent = `Done: trained on ${tf.getBackend()}.`;

  xs.dispose();
  ys.dispose();
  model.dispose();
  window.exampleResult = {
    backend: tf.getBackend(), epochs: EPOCHS, losses, firstLoss: losses[0], finalLoss: losses[losses.length - 1],
    accuracy, seconds,
  };
  document.body.dataset.state = 'done';
}

main().catch(err => {
  console.error(err);
  $('status').textContent = `Error: ${err.message}`;
  window.exampleResult = {error: String(err && err.stack || err)};
  document.body.dataset.state = 'error';
});
