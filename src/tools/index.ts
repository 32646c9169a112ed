/** Model tools: fold norms into conv/dense layers for inference, recompute running statistics over data. */
export {foldBatchNorm, FoldBatchNormResult, FoldReport, FoldedPair, KeptNorm} from './fold_batch_norm';
export {recomputeBatchNormStats, RecomputeStatsOptions, RecomputeStatsResult, StatsBatch, BatchInputs} from './recompute_stats';
