/**
 * Placeholder until the native OpenBLAS kernels land: reports the fast path as unavailable.
 * @returns a description of the native library when the kernels were registered, else the reason.
 */
export function enableBlasKernels(): string {
  return 'the native OpenBLAS addon is not built (apt-get install libopenblas-dev, then npm ci)';
}
