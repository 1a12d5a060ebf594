import type * as tf from '@tensorflow/tfjs';

/** What the kernels need of tfjs-backend-wasm's `BackendWasm` (its public-but-internal fields). */
export interface WasmBackendInternals {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number; shape: number[]; dtype: string } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
}

/** Checks (structurally) that a kernel's backend is the wasm backend, and returns it typed. */
export function asWasmBackend(backend: unknown): WasmBackendInternals {
  const b = backend as Partial<WasmBackendInternals> | null;
  if (!b || typeof b !== 'object' || !b.wasm || !(b.wasm.HEAPU8 instanceof Uint8Array) || !b.dataIdMap || typeof b.makeOutput !== 'function' || typeof b.incRef !== 'function') {
    throw new Error('distill native kernels: expected the tfjs wasm backend');
  }
  return b as WasmBackendInternals;
}

let lastBuffer: ArrayBufferLike | undefined;
let lastView: Float32Array | undefined;

/**
 * A Float32Array over the whole wasm heap. Take it after every allocation (`makeOutput`): the heap
 * may have grown, which replaces its buffer.
 */
export function heapF32(b: WasmBackendInternals): Float32Array {
  const buf = b.wasm.HEAPU8.buffer;
  if (buf !== lastBuffer || !lastView) {
    lastBuffer = buf;
    lastView = new Float32Array(buf);
  }
  return lastView;
}

/** Element offset (float32 units) of a tensor's data in the wasm heap. */
export function f32Offset(b: WasmBackendInternals, t: tf.TensorInfo): number {
  const d = b.dataIdMap.get(t.dataId);
  if (!d) throw new Error('distill native kernels: tensor data is not on the wasm backend');
  if (d.memoryOffset % 4 !== 0) throw new Error('distill native kernels: misaligned tensor data');
  return d.memoryOffset >>> 2;
}

/** Whether the tensor's memory is owned by it alone (so that an in-place update is invisible elsewhere). */
export function soleOwner(b: WasmBackendInternals, t: tf.TensorInfo): boolean {
  const d = b.dataIdMap.get(t.dataId) as { refCount?: number } | undefined;
  return d?.refCount === 1;
}
