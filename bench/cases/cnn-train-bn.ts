import { cnnTrainCase } from './cnn-train.ts';
import type { BenchCase } from '../types.ts';

/**
 * Training throughput (examples/s) of the `cnn-train` CNN with batch normalisation on both conv
 * blocks (`buildCnn(batch, seed, true)` in `bench/cnn.ts`: conv without bias -> batch norm -> relu ->
 * max-pool, as the `cnn` architecture builds `batch_norm: true`), batch 128, Adam (lr 1e-3), stepped
 * as the pipeline's loop does. Timed windows alternate with runs of the PyTorch peer
 * (`bench/peers/torch_cnn.py --mode train --batch-norm`: BatchNorm2d, eps 1e-3, momentum 0.01);
 * each side reports its best window. On cpu: one short window, no peer.
 */
export const benchCase: BenchCase = cnnTrainCase('cnn-train-bn', true);
