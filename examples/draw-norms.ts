/**
 * Draws examples/results/norms.svg (`npm run draw-norms`): what each norm
 * normalizes over, after Figure 2 of the Group Normalization paper (Wu & He
 * 2018). Each box is a batch of feature maps: N samples (depth), C channels
 * (width), H x W positions (height). The shaded cells are the values that
 * share one mean and one variance.
 *
 *   BatchNorm     one channel, over N, H, W
 *   LayerNorm     one sample, over C, H, W
 *   InstanceNorm  one sample and one channel, over H, W
 *   GroupNorm     one sample and one group of channels, over C / G, H, W
 *
 * Plain SVG written by hand (no dependencies), so the drawing is reproducible
 * byte for byte: `npm run draw-norms -- --out some/where.svg`.
 */
import * as fs from 'fs';
import * as path from 'path';

const C = 6;          // channels drawn
const N = 6;          // samples drawn
const GROUP = 2;      // channels per group drawn for GroupNorm (G = 3)
const HW_LINES = 4;   // horizontal strata on the H x W axis (texture only: every norm spans all positions)

const CELL = 18;              // width of a channel on the front face
const HEIGHT = 96;            // height of the H x W axis
const DX = 9, DY = 7;         // screen offset of one step back along N
const PANEL = 200;            // panel width
const SHADE = '#4c78a8';      // the normalized set
const SHADE_TOP = '#6b93c2';
const SHADE_SIDE = '#3a5f88';
const STROKE = '#555';

/** The set of (sample, channel) columns that one normalization group covers; every H x W position is included. */
type Selected = (n: number, c: number) => boolean;

interface Panel {
  title: string;
  over: string;
  selected: Selected;
}

const PANELS: Panel[] = [
  {title: 'BatchNorm', over: 'per channel, over N, H, W', selected: (_n, c) => c === 2},
  {title: 'LayerNorm', over: 'per sample, over C, H, W', selected: n => n === 0},
  {title: 'InstanceNorm', over: 'per sample and channel, over H, W', selected: (n, c) => n === 0 && c === 2},
  {title: 'GroupNorm', over: `per sample and group, over C/G, H, W`,
   selected: (n, c) => n === 0 && Math.floor(c / GROUP) === 1},
];

const f = (v: number) => (Math.round(v * 10) / 10).toString();
const poly = (pts: Array<[number, number]>, fill: string) =>
  `<polygon points="${pts.map(([x, y]) => `${f(x)},${f(y)}`).join(' ')}" fill="${fill}" stroke="${STROKE}" stroke-width="0.8"/>`;
const line = (x1: number, y1: number, x2: number, y2: number, extra = '') =>
  `<line x1="${f(x1)}" y1="${f(y1)}" x2="${f(x2)}" y2="${f(y2)}" stroke="${STROKE}" stroke-width="0.5"${extra}/>`;
const text = (x: number, y: number, s: string, extra = '') =>
  `<text x="${f(x)}" y="${f(y)}"${extra}>${s}</text>`;

/** One box at (x0, y0) = the front face's bottom-left corner. */
function box(x0: number, y0: number, panel: Panel): string[] {
  // Screen position of (channel c, sample n, height h in [0, HEIGHT]); n grows backwards (up and right).
  const at = (c: number, n: number, h: number): [number, number] => [x0 + c * CELL + n * DX, y0 - h - n * DY];
  const out: string[] = [];
  // Front face (n = 0): one column per channel.
  for (let c = 0; c < C; c++) {
    out.push(poly([at(c, 0, 0), at(c + 1, 0, 0), at(c + 1, 0, HEIGHT), at(c, 0, HEIGHT)],
                  panel.selected(0, c) ? SHADE : 'white'));
  }
  // Top face (h = HEIGHT): one cell per (sample, channel).
  for (let n = N - 1; n >= 0; n--) {
    for (let c = 0; c < C; c++) {
      out.push(poly([at(c, n, HEIGHT), at(c + 1, n, HEIGHT), at(c + 1, n + 1, HEIGHT), at(c, n + 1, HEIGHT)],
                    panel.selected(n, c) ? SHADE_TOP : 'white'));
    }
  }
  // Right face (c = C): one column per sample.
  for (let n = N - 1; n >= 0; n--) {
    out.push(poly([at(C, n, 0), at(C, n + 1, 0), at(C, n + 1, HEIGHT), at(C, n, HEIGHT)],
                  panel.selected(n, C - 1) ? SHADE_SIDE : '#f2f2f2'));
  }
  // H x W strata on the front and right faces.
  for (let k = 1; k < HW_LINES; k++) {
    const h = (k * HEIGHT) / HW_LINES;
    out.push(line(...at(0, 0, h), ...at(C, 0, h), ' stroke-dasharray="2,2"'));
    out.push(line(...at(C, 0, h), ...at(C, N, h), ' stroke-dasharray="2,2"'));
  }
  // Axis labels: C along the front bottom edge, N along the left top edge, H, W along the left edge.
  const [cx, cy] = at(C / 2, 0, 0);
  out.push(text(cx, cy + 16, 'C', ' text-anchor="middle" font-style="italic"'));
  const [nx, ny] = at(0, N / 2, HEIGHT);
  out.push(text(nx - 8, ny - 4, 'N', ' text-anchor="end" font-style="italic"'));
  const [hx, hy] = at(0, 0, HEIGHT / 2);
  out.push(text(hx - 6, hy + 4, 'H, W', ' text-anchor="end" font-style="italic"'));
  return out;
}

export function normsSvg(): string {
  const width = PANEL * PANELS.length + 20;
  const height = 250;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  PANELS.forEach((panel, i) => {
    const left = 10 + i * PANEL;
    parts.push(text(left + PANEL / 2, 22, panel.title, ' text-anchor="middle" font-size="14" font-weight="bold"'));
    parts.push(...box(left + 48, 178, panel));
    parts.push(text(left + PANEL / 2, 222, panel.over, ' text-anchor="middle" font-size="11"'));
  });
  parts.push(text(width / 2, 243, `Shaded: the values that share one mean and variance (after Wu &amp; He 2018, Figure 2). ` +
                  `After a dense layer (the sweep's MLP) H x W = 1, and InstanceNorm would normalize single values.`,
                  ' text-anchor="middle" font-size="10" fill="#444"'));
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

if (require.main === module) {
  const i = process.argv.indexOf('--out');
  const out = path.resolve(i >= 0 ? process.argv[i + 1] : path.join(__dirname, 'results', 'norms.svg'));
  fs.mkdirSync(path.dirname(out), {recursive: true});
  fs.writeFileSync(out, normsSvg());
  console.log(`wrote ${out}`);
}
