import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { BackendError } from '../util/errors.ts';

/** Names accepted by `--backend`. `auto` picks the first available in this order. */
export const BACKEND_NAMES = ['tensorflow', 'wasm-blas', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What was chosen, recorded in every manifest. */
export interface BackendInfo {
  /** Our name for it (one of {@link BACKEND_NAMES}). */
  name: BackendName;
  /** tfjs's own backend name (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Free text: versions, native library, threads. */
  detail: string;
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

/** The backend set by {@link initBackend}, if any. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}

/** Tries to make one backend active; returns its info, or a reason why it is unavailable. */
async function tryBackend(name: BackendName): Promise<BackendInfo | string> {
  switch (name) {
    case 'tensorflow': {
      for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
        try {
          require.resolve(pkg);
        } catch {
          continue;
        }
        try {
          await import(pkg);
          if (await tf.setBackend('tensorflow')) {
            await tf.ready();
            return { name, tfBackend: 'tensorflow', detail: `${pkg} (libtensorflow)` };
          }
        } catch (e) {
          return `${pkg} is installed but failed to load: ${(e as Error).message}`;
        }
      }
      return 'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed (npm install @tensorflow/tfjs-node, on a machine with internet access)';
    }
    case 'wasm-blas': {
      const { enableBlasKernels } = await import('./blas-kernels.ts');
      const wasm = await tryBackend('wasm');
      if (typeof wasm === 'string') return wasm;
      const blas = enableBlasKernels();
      if (!blas.ok) return blas.reason;
      return { name, tfBackend: 'wasm', detail: `wasm + ${blas.detail}` };
    }
    case 'wasm': {
      await import('@tensorflow/tfjs-backend-wasm');
      const wasmMod = await import('@tensorflow/tfjs-backend-wasm');
      const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
      wasmMod.setWasmPaths(path.join(dir, 'dist') + path.sep);
      wasmMod.setThreadsCount?.(1);
      try {
        if (!(await tf.setBackend('wasm'))) return 'the wasm backend failed to initialise';
        await tf.ready();
      } catch (e) {
        return `the wasm backend failed to initialise: ${(e as Error).message}`;
      }
      return { name, tfBackend: 'wasm', detail: `@tensorflow/tfjs-backend-wasm ${wasmMod.version_wasm}` };
    }
    case 'cpu': {
      await tf.setBackend('cpu');
      await tf.ready();
      return { name, tfBackend: 'cpu', detail: `@tensorflow/tfjs-backend-cpu ${tf.version.tfjs}` };
    }
  }
}

/**
 * Chooses and initialises the tensor backend. `auto` (the default) takes the first available of
 * tensorflow (tfjs-node-gpu / tfjs-node), wasm-blas (wasm with OpenBLAS matrix products), wasm,
 * cpu, and says on `onNote` why a faster one was skipped where that is useful.
 * @throws BackendError for an unknown name or one that cannot be used here.
 */
export async function initBackend(requested: string = 'auto', onNote: (msg: string) => void = () => {}): Promise<BackendInfo> {
  if (requested === 'auto') {
    for (const name of BACKEND_NAMES) {
      const r = await tryBackend(name);
      if (typeof r !== 'string') {
        current = r;
        return r;
      }
      if (name === 'wasm-blas') onNote(`fast path unavailable: ${r}`);
    }
    throw new BackendError('no tensor backend could be initialised');
  }
  if (!(BACKEND_NAMES as readonly string[]).includes(requested)) {
    throw new BackendError(`unknown backend '${requested}': expected one of auto, ${BACKEND_NAMES.join(', ')}`);
  }
  const r = await tryBackend(requested as BackendName);
  if (typeof r === 'string') throw new BackendError(`backend '${requested}' is not available here: ${r}`);
  current = r;
  return r;
}
