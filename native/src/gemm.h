/*
 * The addon's own single-precision GEMM (gemm.c), used when OpenBLAS is not installed (or with
 * DISTILL_GEMM=own at build time). It exposes the part of the CBLAS / OpenBLAS interface that
 * addon.c calls, under the same names, so addon.c compiles unchanged against either.
 */
#ifndef DISTILL_GEMM_H
#define DISTILL_GEMM_H

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

/* C = alpha * op(A) op(B) + beta * C for row-major matrices (CblasColMajor is handled by swapping
 * the operands). Results are identical for every thread count: each element of C is summed by one
 * thread in the same order. */
void distill_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Threads used by distill_sgemm: DISTILL_GEMM_THREADS, else OPENBLAS_NUM_THREADS, else the online cores. */
void distill_gemm_set_threads(int n);
int distill_gemm_get_threads(void);
/* "own GEMM AVX2" (the kernel chosen at run time: AVX-512, AVX2 or generic). */
char *distill_gemm_config(void);

#define cblas_sgemm distill_sgemm
#define openblas_set_num_threads distill_gemm_set_threads
#define openblas_get_num_threads distill_gemm_get_threads
#define openblas_get_config distill_gemm_config

#endif
