/**
 * The layer catalog, in the spirit of PyTorch's `ModuleInfo`: one entry per
 * layer holding everything the suites need to test it (factory, defaults,
 * reference function, property-test arbitrary, smoke shapes, gradient-check
 * shapes, hostile configs, bad inputs, shape-grid arguments). Every suite
 * loops over CATALOG; adding a layer to the tests is adding one entry here
 * (plus its PyTorch fixtures in test/fixtures/generate.py).
 *
 * Browser-safe (test/browser/page.ts bundles it, with `../src` as the page's
 * `tfnorm`): no Node modules, and fast-check is passed in by the property
 * suite rather than imported.
 */
import * as tf from '@tensorflow/tfjs';
import type {Arbitrary} from 'fast-check';
import type fastCheck from 'fast-check';
import * as tfn from '../src';
import type {NormalizeSpec, RefSpec} from './reference/norm_reference';

/** float32 machine epsilon (2^-23 = 1.1920928955078125e-7): RMSNorm's default epsilon, as PyTorch's eps=None. */
export const FLOAT32_EPSILON = 2 ** -23;

export type LayerArgs = Record<string, unknown>;
type LayerClass = new (args: any) => tf.layers.Layer;
type Fc = typeof fastCheck;

/** A random configuration and input for the property suite (test/properties.test.ts). */
export interface PropCase {
  layer: string;
  shape: number[];
  /** The layer's constructor arguments. */
  args: LayerArgs;
  /** Input = scale * (offset + N(0, 1)). */
  scale: number;
  offset: number;
  seed: number;
}

/** One configuration of the shared layer test (test/layers.test.ts). */
export interface SmokeSpec {
  args: LayerArgs;
  /** Input shape without the batch dim. */
  inputShape: number[];
  /** [name, shape] of each weight in order. */
  weights: Array<[string, number[]]>;
}

/** A cell of the shape grid (test/shape_grid.ts) as the layer sees it. */
export interface GridCell {
  shape: number[];
  /** 1 (channels-first) or -1 (channels-last). */
  channelAxis: number;
  channels: number;
  /** Position of the cell in the layer's grid: entries vary their other arguments with it. */
  index: number;
}

/** [what, config, message fragments]: `fromConfig(config)` throws a ValueError containing every fragment. */
export type HostileConfig = [string, LayerArgs, string[]];
/** [what, edit of the saved snake_case config, message fragments]: loading the edited model.json throws. */
export type HostileEdit = [string, (config: LayerArgs) => void, string[]];
/** [what, args, message fragments]: the constructor throws a ValueError. */
export type BadArgs = [string, LayerArgs, string[]];
/** [what, args, input shape, message fragments, training, dtype]: apply() throws a ValueError. */
export type BadInput = [string, LayerArgs, number[], string[], boolean, string];

export interface LayerInfo {
  /** Class name (serialization) and the fixtures' `layer`. */
  name: string;
  cls: LayerClass;
  /** The factory's name in `tfn.layers`. */
  factory: keyof typeof tfn.layers;
  /** The smallest valid arguments (the required ones). */
  requiredArgs: LayerArgs;
  /** Documented defaults, as the layer's properties after `new cls(requiredArgs)`. */
  defaults: Record<string, unknown>;
  /** Smallest input rank. */
  minRank: number;
  /** Batch statistics need more than one value per statistic when training (PyTorch's rule). */
  needsTwoValues: boolean;
  /** Runs on the fused kernels where a backend registers them (cpu); false: the op composition everywhere. */
  fused: boolean;
  /** Whether inference uses running statistics with these arguments. */
  tracksRunningStats(args: LayerArgs): boolean;
  /** What the layer computes on `shape` with `args`, for the float64 reference (test/reference/). */
  reference(args: LayerArgs, shape: number[]): RefSpec;
  /** Random configurations for the property suite (fast-check passed in). */
  arbitrary(fc: Fc): Arbitrary<PropCase>;
  /** Configurations of the shared layer test. */
  smoke: SmokeSpec[];
  /** Finite-difference gradient checks. */
  gradcheck: Array<{args: LayerArgs; shape: number[]}>;
  /** A documented config using non-default values: round-trips through fromConfig. */
  documentedConfig: LayerArgs;
  hostileConfigs: HostileConfig[];
  /** A saved [layer, dense] model whose layer config is edited into hostile ones. */
  hostileLoad?: {args: LayerArgs; inputShape: number[]; edits: HostileEdit[]};
  badArgs: BadArgs[];
  badInputs: BadInput[];
  /** Arguments when the layer sits in a small model on a channels-last input with an even channel count. */
  inModel: LayerArgs;
  /** The arguments of a shape-grid cell, or null when the layer cannot take its shape. */
  gridArgs(cell: GridCell): LayerArgs | null;
  /** At least this many PyTorch fixture cases (test/fixtures/generate.py). */
  torchFixtures: number;
  /** PyTorch 1.13 never increments this layer's num_batches_tracked; ours counts batches (README, "Semantics"). */
  countsBatchesUnlikeTorch?: boolean;
}

// ------------------------------------------------------------ helpers

const axisOf = (args: LayerArgs, rank: number): number => {
  const a = (args.axis ?? -1) as number;
  return a < 0 ? a + rank : a;
};

const axesOf = (args: LayerArgs, rank: number): number[] =>
  ((Array.isArray(args.axis) ? args.axis : [args.axis ?? -1]) as number[])
    .map(a => (a < 0 ? a + rank : a)).sort((a, b) => a - b);

const epsilonOf = (args: LayerArgs, fallback: number): number => (args.epsilon ?? fallback) as number;

/** Statistics per channel group: `statAxes` [] (over the batch) or [0] (per sample). */
function channelReference(args: LayerArgs, shape: number[], statAxes: number[], numGroups?: number): NormalizeSpec {
  const ch = axisOf(args, shape.length);
  return {kind: 'normalize', shape, statAxes, channelAxis: ch, numGroups: numGroups ?? shape[ch], paramAxes: [ch],
          center: true, epsilon: epsilonOf(args, 1e-5)};
}

/** Statistics over the normalized axes (LayerNorm, RMSNorm). */
function axesReference(args: LayerArgs, shape: number[], center: boolean, epsilon: number): NormalizeSpec {
  const axes = axesOf(args, shape.length);
  return {kind: 'normalize', shape, statAxes: shape.map((_, a) => a).filter(a => !axes.includes(a)), channelAxis: null,
          paramAxes: axes, center, epsilon: epsilonOf(args, epsilon)};
}

const STATS = (c: number): Array<[string, number[]]> =>
  [['moving_mean', [c]], ['moving_variance', [c]], ['num_batches_tracked', []]];

const divisors = (n: number): number[] => Array.from({length: n}, (_, i) => i + 1).filter(g => n % g === 0);

/** All non-batch axes of the cell's shape. */
const allButBatch = (cell: GridCell): number[] => cell.shape.slice(1).map((_, i) => i + 1);

// ------------------------------------------------------------ property-test arbitraries

const dimArb = (fc: Fc) => fc.integer({min: 1, max: 4});
const scaleArb = (fc: Fc) => fc.constantFrom(1e-2, 0.3, 1, 5, 100);
/** offset in units of scale: up to 1e3 standard deviations. */
const offsetArb = (fc: Fc) => fc.constantFrom(0, 1, -30, 1e3);
const epsArb = (fc: Fc) => fc.constantFrom(1e-5, 1e-3, 0.1, 1);
const momentumArb = (fc: Fc) =>
  fc.oneof(fc.constant(null), fc.constantFrom(0, 0.1, 0.5, 1), fc.double({min: 0, max: 1, noNaN: true}));
const seedArb = (fc: Fc) => fc.integer({min: 0, max: 1e6});

function channelAxisArb(fc: Fc, rank: number): Arbitrary<{axis: number; ch: number}> {
  return fc.tuple(fc.integer({min: 1, max: rank - 1}), fc.boolean()).map(([ch, neg]) => ({axis: neg ? ch - rank : ch, ch}));
}

function shapeArb(fc: Fc, minRank: number): Arbitrary<number[]> {
  return fc.integer({min: minRank, max: 5}).chain(rank => fc.array(dimArb(fc), {minLength: rank, maxLength: rank}));
}

interface ChannelDraw {
  axis: number;
  C: number;
  groupPick: number;
  affine: boolean;
  trackRunningStats: boolean;
  momentum: number | null;
  epsilon: number;
}

/**
 * Layers with a channel axis: rank minRank..5, C 1..6 on a positive or
 * negative axis, grown so every statistic has two values (PyTorch raises
 * otherwise): over the batch (`overBatch`) or per sample.
 */
function channelLayerArb(fc: Fc, layer: string, minRank: number, overBatch: boolean,
                         args: (d: ChannelDraw) => LayerArgs): Arbitrary<PropCase> {
  return shapeArb(fc, minRank).chain(shape0 => fc.record({
    ax: channelAxisArb(fc, shape0.length),
    C: fc.integer({min: 1, max: 6}),
    groupPick: fc.nat(),
    affine: fc.boolean(),
    trackRunningStats: fc.boolean(),
    momentum: momentumArb(fc),
    epsilon: epsArb(fc),
    scale: scaleArb(fc),
    offset: offsetArb(fc),
    seed: seedArb(fc),
  }).map(r => {
    const shape = [...shape0];
    shape[r.ax.ch] = r.C;
    const per = overBatch ? shape.reduce((a, b) => a * b, 1) / r.C
        : shape.filter((_, i) => i !== 0 && i !== r.ax.ch).reduce((a, b) => a * b, 1);
    if (per < 2) {
      const grow = overBatch ? 0 : shape.findIndex((_, i) => i !== 0 && i !== r.ax.ch);
      shape[grow] = 2;
    }
    const a = args({axis: r.ax.axis, C: r.C, groupPick: r.groupPick, affine: r.affine,
                    trackRunningStats: r.trackRunningStats, momentum: r.momentum, epsilon: r.epsilon});
    return {layer, shape, args: a, scale: r.scale, offset: r.offset, seed: r.seed};
  }));
}

/** LayerNorm/RMSNorm: any non-empty subset of the non-batch axes, each positive or negative. */
function axesLayerArb(fc: Fc, layer: string, epsilon: Arbitrary<number | null>,
                      args: (d: {axis: number | number[]; affine: boolean; bias: boolean; epsilon: number | null}) => LayerArgs,
): Arbitrary<PropCase> {
  return shapeArb(fc, 2).chain(shape => fc.record({
    axes: fc.subarray(shape.map((_, i) => i).slice(1), {minLength: 1}),
    negs: fc.array(fc.boolean(), {minLength: shape.length, maxLength: shape.length}),
    single: fc.boolean(),
    affine: fc.boolean(),
    bias: fc.boolean(),
    epsilon,
    scale: scaleArb(fc),
    offset: offsetArb(fc),
    seed: seedArb(fc),
  }).map(r => {
    const axes = r.axes.map(a => (r.negs[a] ? a - shape.length : a));
    const axis = r.single && axes.length === 1 ? axes[0] : axes;
    return {layer, shape, args: args({axis, affine: r.affine, bias: r.bias, epsilon: r.epsilon}), scale: r.scale,
            offset: r.offset, seed: r.seed};
  }));
}

// ------------------------------------------------------------ the entries

const BATCH_NORM: LayerInfo = {
  name: 'BatchNorm',
  cls: tfn.BatchNorm,
  factory: 'batchNorm',
  requiredArgs: {},
  defaults: {axis: -1, momentum: 0.1, epsilon: 1e-5, affine: true, trackRunningStats: true},
  minRank: 2,
  needsTwoValues: true,
  fused: true,
  tracksRunningStats: args => args.trackRunningStats !== false,
  reference: (args, shape) => channelReference(args, shape, []),
  arbitrary: fc => channelLayerArb(fc, 'BatchNorm', 2, true, d => ({
    axis: d.axis, affine: d.affine, epsilon: d.epsilon, trackRunningStats: d.trackRunningStats, momentum: d.momentum})),
  smoke: [
    {args: {}, inputShape: [4, 5, 3], weights: [['gamma', [3]], ['beta', [3]], ...STATS(3)]},
    {args: {axis: 1, affine: false}, inputShape: [3, 4, 5], weights: STATS(3)},
    {args: {trackRunningStats: false}, inputShape: [6], weights: [['gamma', [6]], ['beta', [6]]]},
    {args: {axis: -1, momentum: null}, inputShape: [2, 2, 2, 4], weights: [['gamma', [4]], ['beta', [4]], ...STATS(4)]},
  ],
  gradcheck: [
    {args: {axis: -1}, shape: [4, 3, 2, 3]},
    {args: {axis: 1, momentum: null}, shape: [3, 4, 5]},
  ],
  documentedConfig: {axis: 1, momentum: null, epsilon: 1e-3, trainable: false, name: 'bn_ok', activation: 'relu'},
  hostileConfigs: [
    ['epsilon as a string', {epsilon: '1e-5'}, ['`epsilon`', 'Received: epsilon="1e-5"']],
    ['trackRunningStats as a number', {trackRunningStats: 1}, ['`trackRunningStats`', 'Received: trackRunningStats=1']],
    ['momentum as a string', {momentum: '0.1'}, ['`momentum`', 'Received: momentum="0.1"']],
    ['gammaInitializer as a number', {gammaInitializer: 3}, ['`gammaInitializer`', 'Received: gammaInitializer=3']],
    ['axis non-integer', {axis: 1.5}, ['Received: axis=1.5']],
    ['epsilon NaN', {epsilon: NaN}, ['`epsilon`', 'Received: epsilon=NaN']],
    ['momentum above 1', {momentum: 1.01}, ['Received: momentum=1.01']],
    ['unknown key (typo of epsilon)', {epsilonn: 1e-3}, ['`epsilonn`', 'Received: epsilonn=0.001']],
    ['trainable as a string', {trainable: 'yes'}, ['`trainable`', 'Received: trainable="yes"']],
    ['non-integer size in batchInputShape', {batchInputShape: [null, 2.5]}, ['`batchInputShape`', '2.5']],
    ['config null', null as unknown as LayerArgs, ['config', 'Received: config=null']],
  ],
  hostileLoad: {args: {}, inputShape: [4], edits: [
    ['epsilon as a string', c => { c.epsilon = 'small'; }, ['`epsilon`', 'Received: epsilon="small"']],
    ['momentum out of range', c => { c.momentum = 2; }, ['Received: momentum=2']],
    ['axis as a string', c => { c.axis = 'last'; }, ['`axis`', 'Received: axis="last"']],
    ['unknown key (snake_case typo)', c => { c.epsilonn = 0.001; }, ['`epsilonn`']],
    ['trainable as a string', c => { c.trainable = 'false'; }, ['`trainable`']],
  ]},
  badArgs: [
    ['epsilon 0', {epsilon: 0}, ['`epsilon` must be a finite number > 0', 'Received: epsilon=0']],
    ['momentum 1.5', {momentum: 1.5}, ['[0, 1]', 'Received: momentum=1.5']],
    ['momentum string', {momentum: '0.1'}, ['Received: momentum="0.1"']],
    ['axis 0 (batch)', {axis: 0}, ['channel axis', 'Received: axis=0']],
    ['affine not boolean', {affine: 'yes'}, ['Received: affine="yes"']],
    ['unknown initializer', {gammaInitializer: 'sparkly'}, ['gammaInitializer', 'Received: gammaInitializer="sparkly"']],
  ],
  badInputs: [
    ['axis out of range', {axis: 3}, [2, 3, 4], ['[-2, 2]', 'Received: axis=3'], false, 'float32'],
    ['negative axis reaching the batch axis', {axis: -3}, [2, 3, 4], ['Received: axis=-3'], false, 'float32'],
    ['rank 1', {}, [5], ['rank >= 2', 'Received: input shape=[5]'], false, 'float32'],
    ['one value per channel', {}, [1, 4],
     ['Expected more than 1 value per channel when training', 'Received: input shape=[1, 4]'], true, 'float32'],
    ['bool input', {}, [2, 4], ['float32', 'Received: dtype="bool"'], true, 'bool'],
  ],
  inModel: {},
  gridArgs: cell => ({axis: cell.channelAxis, affine: cell.index % 3 !== 2, trackRunningStats: cell.index % 4 !== 3}),
  torchFixtures: 8,
};

const INSTANCE_NORM: LayerInfo = {
  name: 'InstanceNorm',
  cls: tfn.InstanceNorm,
  factory: 'instanceNorm',
  requiredArgs: {},
  defaults: {axis: -1, momentum: 0.1, epsilon: 1e-5, affine: false, trackRunningStats: false},
  minRank: 3,
  needsTwoValues: true,
  fused: true,
  tracksRunningStats: args => args.trackRunningStats === true,
  reference: (args, shape) => channelReference(args, shape, [0]),
  arbitrary: fc => channelLayerArb(fc, 'InstanceNorm', 3, false, d => ({
    axis: d.axis, affine: d.affine, epsilon: d.epsilon, trackRunningStats: d.trackRunningStats, momentum: d.momentum})),
  smoke: [
    {args: {}, inputShape: [5, 3], weights: []},
    {args: {axis: 1, affine: true, trackRunningStats: true}, inputShape: [3, 4, 4],
     weights: [['gamma', [3]], ['beta', [3]], ...STATS(3)]},
  ],
  gradcheck: [{args: {axis: 1, affine: true, trackRunningStats: true}, shape: [2, 3, 4, 2]}],
  documentedConfig: {affine: true, trackRunningStats: true},
  hostileConfigs: [
    ['affine as a string', {affine: 'true'}, ['`affine`', 'Received: affine="true"']],
    ['axis 0 (batch)', {axis: 0}, ['Received: axis=0']],
    ['momentum NaN', {momentum: NaN}, ['`momentum`', 'Received: momentum=NaN']],
    ['unknown key', {center: false}, ['`center`', 'Received: center=false']],
  ],
  badArgs: [
    ['epsilon NaN', {epsilon: NaN}, ['Received: epsilon=NaN']],
    ['momentum -0.1', {momentum: -0.1}, ['Received: momentum=-0.1']],
  ],
  badInputs: [
    ['rank 2', {}, [2, 5], ['rank >= 3', 'Received: input shape=[2, 5]'], false, 'float32'],
    ['one spatial element', {axis: 1}, [3, 4, 1],
     ['Expected more than 1 spatial element', 'Received: input shape=[3, 4, 1]'], true, 'float32'],
  ],
  inModel: {affine: true, trackRunningStats: true},
  gridArgs: cell => {
    if (cell.shape.length < 3) return null;
    const spatial = cell.shape.reduce((a, b) => a * b, 1) / (cell.shape[0] * cell.channels);
    // One spatial element has no batch statistics: only inference with running statistics runs.
    return {axis: cell.channelAxis, affine: cell.index % 2 === 0, trackRunningStats: spatial === 1 || cell.index % 3 !== 1};
  },
  torchFixtures: 8,
  countsBatchesUnlikeTorch: true,
};

const GROUP_NORM: LayerInfo = {
  name: 'GroupNorm',
  cls: tfn.GroupNorm,
  factory: 'groupNorm',
  requiredArgs: {numGroups: 1},
  defaults: {axis: -1, epsilon: 1e-5, affine: true, trackRunningStats: false, momentum: null},
  minRank: 2,
  needsTwoValues: false,
  fused: true,
  tracksRunningStats: () => false,
  reference: (args, shape) => channelReference(args, shape, [0], args.numGroups as number),
  arbitrary: fc => channelLayerArb(fc, 'GroupNorm', 2, false, d => {
    const ds = divisors(d.C);
    return {axis: d.axis, affine: d.affine, epsilon: d.epsilon, numGroups: ds[d.groupPick % ds.length]};
  }),
  smoke: [
    {args: {numGroups: 2}, inputShape: [4, 4, 6], weights: [['gamma', [6]], ['beta', [6]]]},
    {args: {numGroups: 3, axis: 1, affine: false}, inputShape: [6, 2, 2, 2], weights: []},
  ],
  gradcheck: [
    {args: {numGroups: 2, axis: -1}, shape: [2, 3, 2, 4]},
    {args: {numGroups: 3, axis: 1}, shape: [2, 6, 5]},
  ],
  documentedConfig: {numGroups: 2, axis: -1, gammaRegularizer: 'l2', activation: 'swish'},
  hostileConfigs: [
    ['axis as a string', {numGroups: 1, axis: '-1'}, ['`axis`', 'Received: axis="-1"']],
    ['numGroups as a string', {numGroups: '2'}, ['`numGroups`', 'Received: numGroups="2"']],
    ['regularizer that is an initializer', {numGroups: 1, gammaRegularizer: {className: 'Zeros', config: {}}},
     ['gammaRegularizer', 'Zeros']],
    ['without numGroups', {axis: 1}, ['`numGroups`', 'Received: numGroups=undefined']],
    ['numGroups negative', {numGroups: -2}, ['positive integer', 'Received: numGroups=-2']],
    ['numGroups 0', {numGroups: 0}, ['Received: numGroups=0']],
    ['numGroups non-integer', {numGroups: 2.5}, ['Received: numGroups=2.5']],
    ['epsilon negative', {numGroups: 1, epsilon: -1e-5}, ['Received: epsilon=-0.00001']],
    ['unknown key', {numGroups: 2, groups: 4}, ['`groups`', 'Received: groups=4']],
    ['unknown activation', {numGroups: 2, activation: 'tanh'}, ['`activation`', 'Received: activation="tanh"']],
  ],
  hostileLoad: {args: {numGroups: 2}, inputShape: [4], edits: [
    ['epsilon negative', c => { c.epsilon = -1; }, ['Received: epsilon=-1']],
    ['num_groups missing', c => { delete c.num_groups; }, ['`numGroups`', 'Received: numGroups=undefined']],
    ['num_groups negative', c => { c.num_groups = -2; }, ['Received: numGroups=-2']],
    ['num_groups not dividing the channels', c => { c.num_groups = 3; }, ['divide', 'Received: numGroups=3']],
    ['activation not a tfjs identifier we take', c => { c.activation = 'softmax'; }, ['Received: activation="softmax"']],
  ]},
  badArgs: [
    ['without numGroups', {}, ['numGroups', 'Received: numGroups=undefined']],
    ['numGroups 0', {numGroups: 0}, ['positive integer', 'Received: numGroups=0']],
    ['numGroups 2.5', {numGroups: 2.5}, ['Received: numGroups=2.5']],
    ['axis 1.5', {numGroups: 1, axis: 1.5}, ['Received: axis=1.5']],
  ],
  badInputs: [
    ['numGroups not dividing C', {numGroups: 4}, [2, 3, 6], ['divide', '(6)', 'Received: numGroups=4'], false, 'float32'],
  ],
  inModel: {numGroups: 2},
  gridArgs: cell => {
    const ds = divisors(cell.channels);
    return {axis: cell.channelAxis, numGroups: ds[(cell.index * 3) % ds.length], affine: cell.index % 4 !== 1};
  },
  torchFixtures: 8,
};

const LAYER_NORM: LayerInfo = {
  name: 'LayerNorm',
  cls: tfn.LayerNorm,
  factory: 'layerNorm',
  requiredArgs: {},
  defaults: {axis: -1, epsilon: 1e-5, affine: true, bias: true, trackRunningStats: false, momentum: null},
  minRank: 2,
  needsTwoValues: false,
  fused: true,
  tracksRunningStats: () => false,
  reference: (args, shape) => axesReference(args, shape, true, 1e-5),
  arbitrary: fc => axesLayerArb(fc, 'LayerNorm', epsArb(fc), d => ({
    axis: d.axis, affine: d.affine, epsilon: d.epsilon, bias: d.bias})),
  smoke: [
    {args: {}, inputShape: [4, 6], weights: [['gamma', [6]], ['beta', [6]]]},
    {args: {axis: [-2, -1], bias: false}, inputShape: [3, 4, 6], weights: [['gamma', [4, 6]]]},
  ],
  gradcheck: [{args: {axis: [-2, -1]}, shape: [3, 4, 5]}],
  documentedConfig: {axis: [-2, -1], bias: false, activation: 'gelu'},
  hostileConfigs: [
    ['axis as a list of strings', {axis: ['-1']}, ['`axis`', 'Received: axis=["-1"]']],
    ['bias as a string', {bias: 'no'}, ['`bias`', 'Received: bias="no"']],
    ['unknown initializer class', {gammaInitializer: {className: 'Sparkly', config: {}}}, ['gammaInitializer', 'Sparkly']],
    ['epsilon Infinity', {epsilon: Infinity}, ['`epsilon`', 'Received: epsilon=Infinity']],
    ['unknown key', {normalizedShape: [4]}, ['`normalizedShape`']],
    ['negative size in batchInputShape', {batchInputShape: [null, -4]}, ['`batchInputShape`', '-4']],
  ],
  badArgs: [
    ['epsilon -1', {epsilon: -1}, ['Received: epsilon=-1']],
    ['axis []', {axis: []}, ['Received: axis=[]']],
  ],
  badInputs: [
    ['over the batch axis', {axis: [0, 1]}, [2, 5], ['batch axis', 'Received: axis=[0, 1]'], false, 'float32'],
    ['axis out of range', {axis: -3}, [2, 5], ['Received: axis=-3'], false, 'float32'],
    ['int32 input', {}, [2, 4], ['float32', 'Received: dtype="int32"'], false, 'int32'],
  ],
  inModel: {},
  gridArgs: cell => ({axis: cell.index % 2 === 0 ? cell.channelAxis : allButBatch(cell), bias: cell.index % 3 !== 2}),
  torchFixtures: 8,
};

const RMS_NORM: LayerInfo = {
  name: 'RMSNorm',
  cls: tfn.RMSNorm,
  factory: 'rmsNorm',
  requiredArgs: {},
  defaults: {axis: -1, epsilon: FLOAT32_EPSILON, affine: true, trackRunningStats: false, momentum: null},
  minRank: 2,
  needsTwoValues: false,
  fused: true,
  tracksRunningStats: () => false,
  reference: (args, shape) => axesReference(args, shape, false, FLOAT32_EPSILON),
  arbitrary: fc => axesLayerArb(fc, 'RMSNorm', fc.oneof(fc.constant(null), epsArb(fc)), d => ({
    axis: d.axis, affine: d.affine, epsilon: d.epsilon})),
  smoke: [
    {args: {}, inputShape: [4, 6], weights: [['gamma', [6]]]},
    {args: {axis: [-2, -1], epsilon: 1e-6, affine: false}, inputShape: [3, 4], weights: []},
  ],
  gradcheck: [{args: {axis: -1, epsilon: 1e-5}, shape: [3, 2, 6]}],
  documentedConfig: {epsilon: null},
  hostileConfigs: [
    ['epsilon NaN', {epsilon: NaN}, ['`epsilon`', 'Received: epsilon=NaN']],
    ['unknown key', {eps: 1e-6}, ['`eps`', 'Received: eps=0.000001']],
  ],
  badArgs: [['epsilon 0', {epsilon: 0}, ['Received: epsilon=0']]],
  badInputs: [],
  inModel: {},
  gridArgs: cell => ({axis: cell.index % 2 === 1 ? cell.channelAxis : allButBatch(cell), affine: cell.index % 3 !== 1}),
  torchFixtures: 7,
};

const LOCAL_RESPONSE_NORM: LayerInfo = {
  name: 'LocalResponseNorm',
  cls: tfn.LocalResponseNorm,
  factory: 'localResponseNorm',
  requiredArgs: {size: 1},
  defaults: {alpha: 1e-4, beta: 0.75, k: 1, axis: -1},
  minRank: 3,
  needsTwoValues: false,
  fused: false,
  tracksRunningStats: () => false,
  reference: (args, shape) => ({
    kind: 'window', shape, channelAxis: axisOf(args, shape.length), size: args.size as number,
    alpha: (args.alpha ?? 1e-4) as number, beta: (args.beta ?? 0.75) as number, k: (args.k ?? 1) as number,
  }),
  arbitrary: fc => shapeArb(fc, 3).chain(shape0 => fc.record({
    ax: channelAxisArb(fc, shape0.length),
    C: fc.integer({min: 1, max: 7}),
    size: fc.integer({min: 1, max: 9}),
    alpha: fc.constantFrom(1e-4, 1e-2, 0.5),
    beta: fc.constantFrom(0.5, 0.75, 1, 2),
    k: fc.constantFrom(0.5, 1, 2),
    scale: fc.constantFrom(0.1, 1, 5),
    seed: seedArb(fc),
  }).map(r => {
    const shape = [...shape0];
    shape[r.ax.ch] = r.C;
    return {layer: 'LocalResponseNorm', shape, args: {axis: r.ax.axis, size: r.size, alpha: r.alpha, beta: r.beta, k: r.k},
            scale: r.scale, offset: 0, seed: r.seed};
  })),
  smoke: [
    {args: {size: 3}, inputShape: [4, 4, 5], weights: []},
    {args: {size: 2, alpha: 0.1, beta: 0.5, k: 2, axis: 1}, inputShape: [5, 3], weights: []},
  ],
  gradcheck: [{args: {size: 3, alpha: 0.5, beta: 0.75, k: 1, axis: 1}, shape: [2, 5, 3]}],
  documentedConfig: {size: 5, alpha: 1e-3, beta: 0.5, k: 2, axis: 1},
  hostileConfigs: [
    ['size as a string', {size: '5'}, ['`size`', 'Received: size="5"']],
    ['alpha as a string', {size: 5, alpha: 'small'}, ['`alpha`', 'Received: alpha="small"']],
    ['without size', {alpha: 1e-4}, ['`size`', 'Received: size=undefined']],
    ['size negative', {size: -3}, ['positive integer', 'Received: size=-3']],
    ['size non-integer', {size: 2.5}, ['Received: size=2.5']],
    ['k negative', {size: 3, k: -1}, ['`k`', 'Received: k=-1']],
    ['beta NaN', {size: 3, beta: NaN}, ['`beta`', 'Received: beta=NaN']],
    ['unknown key', {size: 3, depthRadius: 2}, ['`depthRadius`']],
  ],
  hostileLoad: {args: {size: 3, axis: -1}, inputShape: [3, 4], edits: [
    ['size non-integer', c => { c.size = 1.5; }, ['`size`', 'Received: size=1.5']],
  ]},
  badArgs: [
    ['without size', {}, ['Received: size=undefined']],
    ['size 0', {size: 0}, ['Received: size=0']],
  ],
  badInputs: [],
  inModel: {size: 3},
  gridArgs: cell => cell.shape.length < 3 ? null :
    {axis: cell.channelAxis, size: [5, 3, 2, 7][cell.index % 4], alpha: 0.3, beta: 0.75, k: 1},
  torchFixtures: 7,
};

/** Every layer, in the order the suites report them. */
export const CATALOG: readonly LayerInfo[] =
    [BATCH_NORM, INSTANCE_NORM, GROUP_NORM, LAYER_NORM, RMS_NORM, LOCAL_RESPONSE_NORM];

/** The catalog entry of a layer class name; throws for an unknown one. */
export function layerInfo(name: string): LayerInfo {
  const info = CATALOG.find(i => i.name === name);
  if (!info) throw new Error(`${name} is not in test/catalog.ts`);
  return info;
}

/** Layer classes by name. */
export const LAYERS: Readonly<Record<string, LayerClass>> = Object.fromEntries(CATALOG.map(i => [i.name, i.cls]));

/** A new layer through its tfjs-style factory (`tfn.layers.x(args)`). */
export function makeLayer(info: LayerInfo, args: LayerArgs = info.requiredArgs): tf.layers.Layer {
  return (tfn.layers[info.factory] as (a: LayerArgs) => tf.layers.Layer)({...args});
}
