import type { NativeBlas } from './native.ts';
import type { WasmBackendInternals } from './wasm-heap.ts';

interface GrowableMemory {
  buffer: ArrayBuffer;
  grow(delta: number): number;
}

let patched: { memory: GrowableMemory; grow: GrowableMemory['grow'] } | undefined;
let lastResult: number | undefined;

function wasmMemory(be: WasmBackendInternals): GrowableMemory | undefined {
  const asm = (be.wasm as unknown as { asm?: { memory?: unknown } }).asm;
  const m = asm?.memory as Partial<GrowableMemory> | undefined;
  return m && typeof m.grow === 'function' && m.buffer instanceof ArrayBuffer ? (m as GrowableMemory) : undefined;
}

/**
 * Backs the wasm heap with transparent huge pages: advises (and collapses) the heap now, and
 * again after every growth of the wasm memory (its `grow` is wrapped), so that the large weight,
 * activation and gradient buffers sgemm and the streaming kernels work on need far fewer TLB
 * entries. A hint only: where the kernel refuses it nothing changes. `DISTILL_NO_HUGEPAGES=1`
 * turns it off. Idempotent.
 * @returns bytes advised now, or a negative errno, or undefined when not applied.
 */
export function installHugePages(blas: NativeBlas, be: WasmBackendInternals): number | undefined {
  if (process.env.DISTILL_NO_HUGEPAGES === '1' || process.platform !== 'linux') return undefined;
  if (patched) return lastResult;
  const memory = wasmMemory(be);
  if (!memory) return undefined;
  const grow = memory.grow;
  const advise = (collapse: boolean) => {
    lastResult = blas.adviseHugePages(new Float32Array(memory.buffer), collapse);
  };
  // An own property shadows WebAssembly.Memory.prototype.grow, which emscripten's heap resize calls.
  memory.grow = function growAndAdvise(this: GrowableMemory, delta: number): number {
    const r = grow.call(this, delta);
    advise(false); // new pages are not touched yet: they fault in as huge pages
    return r;
  };
  patched = { memory, grow };
  advise(true);
  return lastResult;
}

/** Undoes the `grow` wrapper of {@link installHugePages} (pages already advised stay so). */
export function uninstallHugePages(): void {
  if (!patched) return;
  delete (patched.memory as Partial<GrowableMemory>).grow;
  patched = undefined;
}
