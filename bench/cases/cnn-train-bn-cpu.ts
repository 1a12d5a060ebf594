import type { BenchCase } from '../types.ts';
import { cnnCpuCase } from './cnn-train-cpu.ts';

/**
 * The CPU cost of training the `cnn-train-bn` CNN (batch norm on both conv blocks) on one thread on
 * both sides, in examples per CPU-second (as `cnn-train-cpu`; PyTorch peer `torch_cnn.py --mode train
 * --threads 1 --batch-norm`): the work per step, which other load on the machine hardly changes.
 */
export const benchCase: BenchCase = cnnCpuCase('cnn-train-bn-cpu', true);
