/*
 * A single-precision GEMM for the addon when OpenBLAS is absent: the BLIS/Goto scheme.
 *
 *   for each NC-column block of op(B):  for each KC-deep slice:  pack op(B) into NR-wide slivers
 *     for each MC-row block of op(A):  pack op(A) into MR-tall slivers
 *       for each sliver pair: an MR x NR register-blocked micro-kernel over the KC slice.
 *
 * Micro-kernels: AVX-512 (6 x 32), AVX2 + FMA (6 x 16), chosen at run time with
 * __builtin_cpu_supports, and a portable C one (6 x 16) for other CPUs. DISTILL_GEMM_KERNEL=
 * avx512|avx2|generic caps the choice (tests, benches). Threads (pthreads) split C into column
 * (or, for narrow C, row) ranges in multiples of the tile; each element of C is computed by one
 * thread, summed in the same k order whatever the split, so results do not depend on the thread
 * count. Edge tiles run the same kernel on zero-padded slivers. C is only read when beta != 0.
 */
#define _GNU_SOURCE
#include "gemm.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMM_X86 1
#endif

#define MR 6
#define NR_MAX 32
#define KC 256
#define MC 144
#define NC 3072
/* Below this many multiply-adds per thread, fewer threads are used (thread start-up dominates). */
#define MIN_WORK_PER_THREAD (1.0 * 1024 * 1024)

typedef void (*kernel_fn)(int64_t kc, const float *a, const float *b, float *t);

typedef struct {
  int ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  const float *A, *B;
  int64_t lda, ldb, ldc;
  float *C;
} problem_t;

/* ---- micro-kernels: t (MR x nr, row-major, stride nr) = sum_p a[p*MR + i] * b[p*nr + j] ---- */

typedef float v4f __attribute__((vector_size(16)));

static void kernel_generic(int64_t kc, const float *a, const float *b, float *t) {
  v4f acc[MR][4];
  memset(acc, 0, sizeof acc);
  for (int64_t p = 0; p < kc; p++) {
    v4f bv[4];
    memcpy(bv, b + p * 16, sizeof bv);
    const float *ap = a + p * MR;
    for (int i = 0; i < MR; i++) {
      const float ai = ap[i];
      for (int j = 0; j < 4; j++) acc[i][j] += ai * bv[j];
    }
  }
  memcpy(t, acc, sizeof acc);
}

#ifdef GEMM_X86
__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kc, const float *a, const float *b, float *t) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 ai;
    ai = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
    a += MR;
    b += 16;
  }
  _mm256_store_ps(t + 0, c00); _mm256_store_ps(t + 8, c01); _mm256_store_ps(t + 16, c10); _mm256_store_ps(t + 24, c11);
  _mm256_store_ps(t + 32, c20); _mm256_store_ps(t + 40, c21); _mm256_store_ps(t + 48, c30); _mm256_store_ps(t + 56, c31);
  _mm256_store_ps(t + 64, c40); _mm256_store_ps(t + 72, c41); _mm256_store_ps(t + 80, c50); _mm256_store_ps(t + 88, c51);
}

__attribute__((target("avx512f"))) static void kernel_avx512(int64_t kc, const float *a, const float *b, float *t) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    __m512 ai;
    ai = _mm512_set1_ps(a[0]); c00 = _mm512_fmadd_ps(ai, b0, c00); c01 = _mm512_fmadd_ps(ai, b1, c01);
    ai = _mm512_set1_ps(a[1]); c10 = _mm512_fmadd_ps(ai, b0, c10); c11 = _mm512_fmadd_ps(ai, b1, c11);
    ai = _mm512_set1_ps(a[2]); c20 = _mm512_fmadd_ps(ai, b0, c20); c21 = _mm512_fmadd_ps(ai, b1, c21);
    ai = _mm512_set1_ps(a[3]); c30 = _mm512_fmadd_ps(ai, b0, c30); c31 = _mm512_fmadd_ps(ai, b1, c31);
    ai = _mm512_set1_ps(a[4]); c40 = _mm512_fmadd_ps(ai, b0, c40); c41 = _mm512_fmadd_ps(ai, b1, c41);
    ai = _mm512_set1_ps(a[5]); c50 = _mm512_fmadd_ps(ai, b0, c50); c51 = _mm512_fmadd_ps(ai, b1, c51);
    a += MR;
    b += 32;
  }
  _mm512_store_ps(t + 0, c00); _mm512_store_ps(t + 16, c01); _mm512_store_ps(t + 32, c10); _mm512_store_ps(t + 48, c11);
  _mm512_store_ps(t + 64, c20); _mm512_store_ps(t + 80, c21); _mm512_store_ps(t + 96, c30); _mm512_store_ps(t + 112, c31);
  _mm512_store_ps(t + 128, c40); _mm512_store_ps(t + 144, c41); _mm512_store_ps(t + 160, c50); _mm512_store_ps(t + 176, c51);
}
#endif

/* ---- kernel choice, threads ---- */

static kernel_fn g_kernel;
static int g_nr;
static const char *g_isa;
static int g_threads;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_config[64];

static int env_int(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end;
  long n = strtol(v, &end, 10);
  return (*end == 0 && n >= 1 && n <= 1024) ? (int)n : 0;
}

static void init_once(void) {
  const char *cap = getenv("DISTILL_GEMM_KERNEL");
  int allow512 = !cap || !*cap || strcmp(cap, "avx512") == 0;
  int allow2 = allow512 || strcmp(cap, "avx2") == 0;
  g_kernel = kernel_generic;
  g_nr = 16;
  g_isa = "generic";
#ifdef GEMM_X86
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f")) {
    g_kernel = kernel_avx512; g_nr = 32; g_isa = "AVX-512";
  } else if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    g_kernel = kernel_avx2; g_nr = 16; g_isa = "AVX2";
  }
#endif
  if (!g_threads) {
    int n = env_int("DISTILL_GEMM_THREADS");
    if (!n) n = env_int("OPENBLAS_NUM_THREADS");
    if (!n) {
      long c = sysconf(_SC_NPROCESSORS_ONLN);
      n = c >= 1 ? (c > 1024 ? 1024 : (int)c) : 1;
    }
    g_threads = n;
  }
}

void distill_gemm_set_threads(int n) {
  pthread_once(&g_once, init_once);
  g_threads = n < 1 ? 1 : n;
}

int distill_gemm_get_threads(void) {
  pthread_once(&g_once, init_once);
  return g_threads;
}

char *distill_gemm_config(void) {
  pthread_once(&g_once, init_once);
  snprintf(g_config, sizeof g_config, "own GEMM %s", g_isa);
  return g_config;
}

/* ---- packing ---- */

/* op(A) rows [i0, i0+mc) x cols [p0, p0+kc) into MR-tall slivers: sliver s, step p holds MR values. */
static void pack_a(const problem_t *pr, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *restrict dst) {
  for (int64_t s = 0; s < mc; s += MR) {
    const int64_t rows = mc - s < MR ? mc - s : MR;
    if (!pr->ta) {
      for (int r = 0; r < MR; r++) {
        if (r < rows) {
          const float *src = pr->A + (i0 + s + r) * pr->lda + p0;
          for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = src[p];
        } else {
          for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = 0.0f;
        }
      }
    } else {
      for (int64_t p = 0; p < kc; p++) {
        const float *src = pr->A + (p0 + p) * pr->lda + i0 + s;
        int r = 0;
        for (; r < rows; r++) dst[p * MR + r] = src[r];
        for (; r < MR; r++) dst[p * MR + r] = 0.0f;
      }
    }
    dst += MR * kc;
  }
}

/* op(B) rows [p0, p0+kc) x cols [j0, j0+nc) into nr-wide slivers: sliver s, step p holds nr values. */
static void pack_b(const problem_t *pr, int nr, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *restrict dst) {
  for (int64_t s = 0; s < nc; s += nr) {
    const int64_t cols = nc - s < nr ? nc - s : nr;
    if (!pr->tb) {
      for (int64_t p = 0; p < kc; p++) {
        const float *src = pr->B + (p0 + p) * pr->ldb + j0 + s;
        float *d = dst + p * nr;
        int64_t c = 0;
        for (; c < cols; c++) d[c] = src[c];
        for (; c < nr; c++) d[c] = 0.0f;
      }
    } else {
      for (int64_t c = 0; c < nr; c++) {
        if (c < cols) {
          const float *src = pr->B + (j0 + s + c) * pr->ldb + p0;
          for (int64_t p = 0; p < kc; p++) dst[p * nr + c] = src[p];
        } else {
          for (int64_t p = 0; p < kc; p++) dst[p * nr + c] = 0.0f;
        }
      }
    }
    dst += nr * kc;
  }
}

/* ---- the blocked loops over C[m0:m1, n0:n1] ---- */

static void gemm_range(const problem_t *pr, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float *apack, float *bpack) {
  const int nr = g_nr;
  const kernel_fn kernel = g_kernel;
  float t[MR * NR_MAX] __attribute__((aligned(64)));
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = n1 - jc < NC ? n1 - jc : NC;
    for (int64_t pc = 0; pc < pr->K; pc += KC) {
      const int64_t kc = pr->K - pc < KC ? pr->K - pc : KC;
      const float beta = pc == 0 ? pr->beta : 1.0f;
      pack_b(pr, nr, pc, kc, jc, nc, bpack);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = m1 - ic < MC ? m1 - ic : MC;
        pack_a(pr, ic, mc, pc, kc, apack);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t cols = nc - jr < nr ? nc - jr : nr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t rows = mc - ir < MR ? mc - ir : MR;
            kernel(kc, apack + ir * kc, bpack + jr * kc, t);
            float *c = pr->C + (ic + ir) * pr->ldc + jc + jr;
            for (int64_t i = 0; i < rows; i++) {
              float *restrict ci = c + i * pr->ldc;
              const float *restrict ti = t + i * nr;
              if (beta == 0.0f) {
                for (int64_t j = 0; j < cols; j++) ci[j] = pr->alpha * ti[j];
              } else if (beta == 1.0f) {
                for (int64_t j = 0; j < cols; j++) ci[j] = pr->alpha * ti[j] + ci[j];
              } else {
                for (int64_t j = 0; j < cols; j++) ci[j] = pr->alpha * ti[j] + beta * ci[j];
              }
            }
          }
        }
      }
    }
  }
}

typedef struct {
  const problem_t *pr;
  int64_t m0, m1, n0, n1;
  int ok;
} task_t;

/* A plain loop over C[m0:m1, n0:n1], for when the packing buffers cannot be allocated. */
static void naive_range(const problem_t *pr, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t i = m0; i < m1; i++)
    for (int64_t j = n0; j < n1; j++) {
      float s = 0.0f;
      for (int64_t p = 0; p < pr->K; p++)
        s += (pr->ta ? pr->A[p * pr->lda + i] : pr->A[i * pr->lda + p]) * (pr->tb ? pr->B[j * pr->ldb + p] : pr->B[p * pr->ldb + j]);
      float *c = pr->C + i * pr->ldc + j;
      *c = pr->beta == 0.0f ? pr->alpha * s : pr->alpha * s + pr->beta * *c;
    }
}

static void *run_task(void *arg) {
  task_t *tk = (task_t *)arg;
  const int64_t kc = tk->pr->K < KC ? tk->pr->K : KC;
  float *apack = aligned_alloc(64, (size_t)((MC + MR - 1) / MR * MR * kc * sizeof(float) + 63) / 64 * 64);
  float *bpack = aligned_alloc(64, (size_t)((NC + NR_MAX - 1) / NR_MAX * NR_MAX * kc * sizeof(float) + 63) / 64 * 64);
  if (apack && bpack) gemm_range(tk->pr, tk->m0, tk->m1, tk->n0, tk->n1, apack, bpack);
  else naive_range(tk->pr, tk->m0, tk->m1, tk->n0, tk->n1);
  free(apack);
  free(bpack);
  tk->ok = 1;
  return NULL;
}

void distill_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  pthread_once(&g_once, init_once);
  if (order == CblasColMajor) {
    /* C^T = op(B)^T op(A)^T in row-major terms. */
    distill_sgemm(CblasRowMajor, tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
    return;
  }
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < M; i++) {
      float *c = C + i * (int64_t)ldc;
      for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    }
    return;
  }
  problem_t pr = {ta != CblasNoTrans, tb != CblasNoTrans, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C};
  const double work = (double)M * (double)N * (double)K;
  int threads = g_threads;
  if (threads > 1 && work / threads < MIN_WORK_PER_THREAD) {
    threads = (int)(work / MIN_WORK_PER_THREAD);
    if (threads < 1) threads = 1;
  }
  /* Split the longer side of C in multiples of the tile. */
  const int split_n = N >= M;
  const int64_t len = split_n ? N : M, unit = split_n ? g_nr : MR;
  const int64_t units = (len + unit - 1) / unit;
  if (threads > units) threads = (int)units;
  task_t tasks[64];
  if (threads > 64) threads = 64;
  for (int t = 0; t < threads; t++) {
    const int64_t u0 = units * t / threads, u1 = units * (t + 1) / threads;
    const int64_t a = u0 * unit, b = u1 * unit < len ? u1 * unit : len;
    tasks[t] = (task_t){&pr, split_n ? 0 : a, split_n ? M : b, split_n ? a : 0, split_n ? b : N, 0};
  }
  pthread_t tids[64];
  int started[64] = {0};
  for (int t = 1; t < threads; t++) started[t] = pthread_create(&tids[t], NULL, run_task, &tasks[t]) == 0;
  run_task(&tasks[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    if (!started[t]) run_task(&tasks[t]); /* no thread available: do it here */
  }
}
