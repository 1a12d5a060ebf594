/*
 * distill_blas: a small N-API addon exposing OpenBLAS sgemm and a few fused float32 kernels on
 * Float32Array views (typically views on the tfjs wasm backend's heap). All offsets and sizes are
 * in elements. Arguments are validated (types, bounds) and a JS Error is thrown on misuse, so no
 * call from JS can read or write outside the arrays it was given.
 */
#define _GNU_SOURCE
#include <node_api.h>
#ifdef DISTILL_OWN_GEMM
#include "gemm.h" /* the addon's own GEMM (gemm.c) under the CBLAS / OpenBLAS names */
#else
#include <cblas.h>
#endif
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DISTILL_OWN_GEMM
/* OpenBLAS extensions (declared in its cblas.h, repeated here for other cblas.h variants). */
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
#endif

#define THROW(env, msg)                         \
  do {                                          \
    napi_throw_error((env), NULL, (msg));       \
    return NULL;                                \
  } while (0)

#define CHECK(env, call)                                         \
  do {                                                           \
    if ((call) != napi_ok) THROW(env, "distill_blas: N-API call failed: " #call); \
  } while (0)

/* Declares argv[n] and reads exactly n arguments of distill_blas.<fn>, or throws and returns NULL. */
#define ARGS(n, fn)                                                                 \
  napi_value argv[n];                                                               \
  do {                                                                              \
    size_t argc_ = (n);                                                             \
    CHECK(env, napi_get_cb_info(env, info, &argc_, argv, NULL, NULL));              \
    if (argc_ != (n)) THROW(env, "distill_blas." fn ": expected " #n " arguments"); \
  } while (0)

/* Products with M * N * K below this run on one OpenBLAS thread (see js_sgemm). */
#define SINGLE_THREAD_MNK (4.0 * 1024 * 1024)

typedef struct {
  float *data;
  size_t length;
} fview;

/* Reads argument i as a Float32Array (or null when allow_null). Returns 0 on failure (thrown). */
static int get_f32(napi_env env, napi_value v, fview *out, int allow_null, const char *what) {
  napi_valuetype t;
  out->data = NULL;
  out->length = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (allow_null && (t == napi_null || t == napi_undefined)) return 1;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) {
    char msg[160];
    snprintf(msg, sizeof msg, "distill_blas: %s must be a Float32Array", what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  napi_typedarray_type tt;
  void *data;
  size_t len;
  if (napi_get_typedarray_info(env, v, &tt, &len, &data, NULL, NULL) != napi_ok) return 0;
  if (tt != napi_float32_array) {
    char msg[160];
    snprintf(msg, sizeof msg, "distill_blas: %s must be a Float32Array", what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  out->data = (float *)data;
  out->length = len;
  return 1;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "distill_blas: expected a number");
    return 0;
  }
  return 1;
}

static int get_f64(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "distill_blas: expected a number");
    return 0;
  }
  return 1;
}

static int get_bool(napi_env env, napi_value v, int *out) {
  bool b;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_boolean) {
    napi_get_value_bool(env, v, &b);
    *out = b ? 1 : 0;
    return 1;
  }
  int64_t i;
  if (!get_i64(env, v, &i)) return 0;
  *out = i != 0;
  return 1;
}

/* Elements a (rows x cols) row-major matrix with leading dimension ld spans. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  if (rows <= 0 || cols <= 0) return 0;
  return (rows - 1) * ld + cols;
}

/*
 * sgemm(transA, transB, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, C, cOff, ldc)
 * C[M x N] = alpha * op(A) op(B) + beta * C, row-major.
 */
static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  ARGS(16, "sgemm");
  int ta, tb;
  int64_t M, N, K, aOff, lda, bOff, ldb, cOff, ldc;
  double alpha, beta;
  fview A, B, C;
  if (!get_bool(env, argv[0], &ta) || !get_bool(env, argv[1], &tb) || !get_i64(env, argv[2], &M) ||
      !get_i64(env, argv[3], &N) || !get_i64(env, argv[4], &K) || !get_f64(env, argv[5], &alpha) ||
      !get_f32(env, argv[6], &A, 0, "A") || !get_i64(env, argv[7], &aOff) || !get_i64(env, argv[8], &lda) ||
      !get_f32(env, argv[9], &B, 0, "B") || !get_i64(env, argv[10], &bOff) || !get_i64(env, argv[11], &ldb) ||
      !get_f64(env, argv[12], &beta) || !get_f32(env, argv[13], &C, 0, "C") || !get_i64(env, argv[14], &cOff) ||
      !get_i64(env, argv[15], &ldc))
    return NULL;
  if (M < 0 || N < 0 || K < 0 || aOff < 0 || bOff < 0 || cOff < 0) THROW(env, "distill_blas.sgemm: negative size or offset");
  if (M == 0 || N == 0) return NULL;
  int64_t aRows = ta ? K : M, aCols = ta ? M : K;
  int64_t bRows = tb ? N : K, bCols = tb ? K : N;
  if (K > 0) {
    if (lda < (aCols > 1 ? aCols : 1) || ldb < (bCols > 1 ? bCols : 1)) THROW(env, "distill_blas.sgemm: leading dimension too small");
    if (aOff + span(aRows, aCols, lda) > (int64_t)A.length) THROW(env, "distill_blas.sgemm: A is too short for the given shape");
    if (bOff + span(bRows, bCols, ldb) > (int64_t)B.length) THROW(env, "distill_blas.sgemm: B is too short for the given shape");
  }
  if (ldc < N) THROW(env, "distill_blas.sgemm: ldc too small");
  if (cOff + span(M, N, ldc) > (int64_t)C.length) THROW(env, "distill_blas.sgemm: C is too short for the given shape");
  if (K == 0) {
    /* op(A) op(B) is all zeros: C = beta * C. */
    for (int64_t i = 0; i < M; i++) {
      float *c = C.data + cOff + i * ldc;
      for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0 ? 0.0f : (float)(beta * c[j]);
    }
    return NULL;
  }
  if (lda < 1) lda = 1;
  if (ldb < 1) ldb = 1;
  /* Small products (e.g. a 10-class output layer) are faster on one thread: waking OpenBLAS's
   * workers costs more than it saves, much more on a loaded machine. */
  const int threads = openblas_get_num_threads();
  const int single = threads > 1 && (double)M * (double)N * (double)K < SINGLE_THREAD_MNK;
  if (single) openblas_set_num_threads(1);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              (float)alpha, A.data + aOff, (int)lda, B.data + bOff, (int)ldb, (float)beta, C.data + cOff, (int)ldc);
  if (single) openblas_set_num_threads(threads);
  return NULL;
}

/* Hot loops, kept in small functions with restrict pointers so that GCC vectorizes them. The
 * activations follow tfjs: relu(x) = x < 0 ? 0 : x (NaN stays NaN), prelu/leaky x < 0 ? w x : x. */
__attribute__((noinline)) static void add_scalar(float *restrict c, float b, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] + b;
}
__attribute__((noinline)) static void add_row(float *restrict c, const float *restrict b, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] + b[j];
}
__attribute__((noinline)) static void relu(float *restrict c, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] < 0.0f ? 0.0f : c[j];
}
__attribute__((noinline)) static void relu6(float *restrict c, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    const float v = c[j] < 0.0f ? 0.0f : c[j];
    c[j] = v > 6.0f ? 6.0f : v;
  }
}
__attribute__((noinline)) static void elu(float *restrict c, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] >= 0.0f ? c[j] : expm1f(c[j]);
}
__attribute__((noinline)) static void leaky(float *restrict c, float w, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] < 0.0f ? w * c[j] : c[j];
}
__attribute__((noinline)) static void prelu_row(float *restrict c, const float *restrict w, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = c[j] < 0.0f ? w[j] * c[j] : c[j];
}
__attribute__((noinline)) static void sigmoid(float *restrict c, int64_t n) {
  for (int64_t j = 0; j < n; j++) c[j] = 1.0f / (1.0f + expf(-c[j]));
}
__attribute__((noinline)) static void momentum_plain(float *restrict w, float *restrict acc, const float *restrict g, int64_t n, float m, float c) {
  for (int64_t i = 0; i < n; i++) {
    const float a = m * acc[i] + g[i];
    acc[i] = a;
    w[i] = c * a + w[i];
  }
}
__attribute__((noinline)) static void momentum_nesterov(float *restrict w, float *restrict acc, const float *restrict g, int64_t n, float m, float c) {
  for (int64_t i = 0; i < n; i++) {
    const float a = m * acc[i] + g[i];
    acc[i] = a;
    w[i] = c * (g[i] + a * m) + w[i];
  }
}
__attribute__((noinline)) static void col_sum(float *restrict out, const float *restrict x, int64_t rows, int64_t cols) {
  for (int64_t j = 0; j < cols; j++) out[j] = 0.0f;
  for (int64_t i = 0; i < rows; i++) {
    const float *restrict r = x + i * cols;
    for (int64_t j = 0; j < cols; j++) out[j] += r[j];
  }
}

enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_ELU = 3, ACT_PRELU = 4, ACT_LEAKY = 5, ACT_SIGMOID = 6 };

/*
 * biasAct(C, cOff, rows, cols, bias|null, biasOff, biasLen, act, leakyAlpha, prelu|null, preluOff, preluLen)
 * In place on the rows x cols block at C[cOff]: adds bias (biasLen 1 = scalar, cols = per column),
 * then applies the activation (codes above; prelu weights likewise scalar or per column).
 */
static napi_value js_bias_act(napi_env env, napi_callback_info info) {
  ARGS(12, "biasAct");
  fview C, bias, prelu;
  int64_t cOff, rows, cols, biasOff, biasLen, act, preluOff, preluLen;
  double alpha;
  if (!get_f32(env, argv[0], &C, 0, "C") || !get_i64(env, argv[1], &cOff) || !get_i64(env, argv[2], &rows) ||
      !get_i64(env, argv[3], &cols) || !get_f32(env, argv[4], &bias, 1, "bias") || !get_i64(env, argv[5], &biasOff) ||
      !get_i64(env, argv[6], &biasLen) || !get_i64(env, argv[7], &act) || !get_f64(env, argv[8], &alpha) ||
      !get_f32(env, argv[9], &prelu, 1, "prelu") || !get_i64(env, argv[10], &preluOff) || !get_i64(env, argv[11], &preluLen))
    return NULL;
  if (rows < 0 || cols < 0 || cOff < 0 || cOff + rows * cols > (int64_t)C.length) THROW(env, "distill_blas.biasAct: C is too short");
  if (bias.data) {
    if (!(biasLen == 1 || biasLen == cols) || biasOff < 0 || biasOff + biasLen > (int64_t)bias.length)
      THROW(env, "distill_blas.biasAct: bias must have length 1 or cols");
  }
  if (act == ACT_PRELU) {
    if (!prelu.data || !(preluLen == 1 || preluLen == cols) || preluOff < 0 || preluOff + preluLen > (int64_t)prelu.length)
      THROW(env, "distill_blas.biasAct: prelu weights must have length 1 or cols");
  }
  if (act < 0 || act > 6) THROW(env, "distill_blas.biasAct: unknown activation code");
  const float a = (float)alpha;
  const float *bp = bias.data ? bias.data + biasOff : NULL;
  const float *pp = prelu.data ? prelu.data + preluOff : NULL;
  for (int64_t i = 0; i < rows; i++) {
    float *c = C.data + cOff + i * cols;
    if (bp) {
      if (biasLen == 1) add_scalar(c, bp[0], cols);
      else add_row(c, bp, cols);
    }
    switch (act) {
      case ACT_LINEAR: break;
      case ACT_RELU: relu(c, cols); break;
      case ACT_RELU6: relu6(c, cols); break;
      case ACT_ELU: elu(c, cols); break;
      case ACT_PRELU:
        if (preluLen == 1) leaky(c, pp[0], cols);
        else prelu_row(c, pp, cols);
        break;
      case ACT_LEAKY: leaky(c, a, cols); break;
      case ACT_SIGMOID: sigmoid(c, cols); break;
    }
  }
  return NULL;
}

/*
 * momentum(H, wOff, accOff, gOff, n, m, c, nesterov): SGD with momentum, in place, one pass:
 *   acc = m * acc + g;  w = w + c * acc            (c = -learning rate)
 *   nesterov: w = w + c * (g + m * acc)
 * Same float32 operation order as tfjs's MomentumOptimizer (no fused multiply-add contraction:
 * built with -std=c11, i.e. -ffp-contract=off).
 */
static napi_value js_momentum(napi_env env, napi_callback_info info) {
  ARGS(8, "momentum");
  fview H;
  int64_t wOff, accOff, gOff, n;
  double m, c;
  int nesterov;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &wOff) || !get_i64(env, argv[2], &accOff) ||
      !get_i64(env, argv[3], &gOff) || !get_i64(env, argv[4], &n) || !get_f64(env, argv[5], &m) || !get_f64(env, argv[6], &c) ||
      !get_bool(env, argv[7], &nesterov))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (n < 0 || wOff < 0 || accOff < 0 || gOff < 0 || wOff + n > len || accOff + n > len || gOff + n > len)
    THROW(env, "distill_blas.momentum: range outside the array");
  if (nesterov) momentum_nesterov(H.data + wOff, H.data + accOff, H.data + gOff, n, (float)m, (float)c);
  else momentum_plain(H.data + wOff, H.data + accOff, H.data + gOff, n, (float)m, (float)c);
  return NULL;
}

__attribute__((noinline)) static void adam_step(float *restrict w, float *restrict m, float *restrict v, const float *restrict g, int64_t n,
                                                float b1, float omb1, float b2, float omb2, float lrc1, float c2, float eps) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float m2 = m[i] * b1 + gi * omb1;
    const float v2 = v[i] * b2 + (gi * gi) * omb2;
    m[i] = m2;
    v[i] = v2;
    w[i] = w[i] - (m2 * lrc1) / (sqrtf(v2 * c2) + eps);
  }
}

/*
 * adam(H, wOff, mOff, vOff, gOff, n, b1, omb1, b2, omb2, lrc1, c2, eps): one Adam update in place,
 * one pass, the float32 operation order of ParamOptimizer's tfjs ops (src/models/optimizer.ts):
 *   m = m*b1 + g*omb1;  v = v*b2 + (g*g)*omb2;  w = w - (m*lrc1) / (sqrt(v*c2) + eps)
 * with omb1 = 1 - b1, lrc1 = lr / (1 - b1^t), c2 = 1 / (1 - b2^t) computed by the caller (doubles,
 * rounded to float32 here like tfjs scalars).
 */
static napi_value js_adam(napi_env env, napi_callback_info info) {
  ARGS(13, "adam");
  fview H;
  int64_t wOff, mOff, vOff, gOff, n;
  double k[7];
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &wOff) || !get_i64(env, argv[2], &mOff) ||
      !get_i64(env, argv[3], &vOff) || !get_i64(env, argv[4], &gOff) || !get_i64(env, argv[5], &n))
    return NULL;
  for (int j = 0; j < 7; j++)
    if (!get_f64(env, argv[6 + j], &k[j])) return NULL;
  const int64_t len = (int64_t)H.length;
  if (n < 0 || wOff < 0 || mOff < 0 || vOff < 0 || gOff < 0 || wOff + n > len || mOff + n > len || vOff + n > len || gOff + n > len)
    THROW(env, "distill_blas.adam: range outside the array");
  adam_step(H.data + wOff, H.data + mOff, H.data + vOff, H.data + gOff, n, (float)k[0], (float)k[1], (float)k[2], (float)k[3], (float)k[4],
            (float)k[5], (float)k[6]);
  return NULL;
}

/*
 * sgdStep(H, wOff, velOff, gOff, n, lr, mu, nesterov): ParamOptimizer's SGD in place, one pass, its
 * float32 operation order: velOff < 0 (no momentum slot): w = w - g*lr; otherwise
 *   lrG = g*lr;  vel = vel*mu - lrG;  w = w + vel   (nesterov: w = (w + vel*mu) - lrG)
 */
static napi_value js_sgd_step(napi_env env, napi_callback_info info) {
  ARGS(8, "sgdStep");
  fview H;
  int64_t wOff, velOff, gOff, n;
  double lr, mu;
  int nesterov;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &wOff) || !get_i64(env, argv[2], &velOff) ||
      !get_i64(env, argv[3], &gOff) || !get_i64(env, argv[4], &n) || !get_f64(env, argv[5], &lr) || !get_f64(env, argv[6], &mu) ||
      !get_bool(env, argv[7], &nesterov))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (n < 0 || wOff < 0 || gOff < 0 || wOff + n > len || gOff + n > len || (velOff >= 0 && velOff + n > len))
    THROW(env, "distill_blas.sgdStep: range outside the array");
  float *restrict w = H.data + wOff;
  const float *restrict g = H.data + gOff;
  const float flr = (float)lr, fmu = (float)mu;
  if (velOff < 0) {
    for (int64_t i = 0; i < n; i++) w[i] = w[i] - g[i] * flr;
    return NULL;
  }
  float *restrict vel = H.data + velOff;
  if (nesterov) {
    for (int64_t i = 0; i < n; i++) {
      const float lrG = g[i] * flr;
      const float v2 = vel[i] * fmu - lrG;
      vel[i] = v2;
      w[i] = (w[i] + v2 * fmu) - lrG;
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      const float v2 = vel[i] * fmu - g[i] * flr;
      vel[i] = v2;
      w[i] = w[i] + v2;
    }
  }
  return NULL;
}

/*
 * maxNormCols(H, wOff, rows, cols, maxValue): the max-norm constraint on the columns of a row-major
 * rows x cols matrix, in place: each column whose Euclidean norm exceeds maxValue is multiplied by
 * maxValue / norm (float32); the other columns are left untouched (bit for bit). Returns the number
 * of columns rescaled.
 */
static napi_value js_max_norm_cols(napi_env env, napi_callback_info info) {
  ARGS(5, "maxNormCols");
  fview H;
  int64_t wOff, rows, cols;
  double maxValue;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &wOff) || !get_i64(env, argv[2], &rows) ||
      !get_i64(env, argv[3], &cols) || !get_f64(env, argv[4], &maxValue))
    return NULL;
  if (rows < 0 || cols < 0 || wOff < 0 || wOff + rows * cols > (int64_t)H.length) THROW(env, "distill_blas.maxNormCols: range outside the array");
  float *ss = calloc(cols > 0 ? (size_t)cols : 1, sizeof(float));
  if (!ss) THROW(env, "distill_blas.maxNormCols: out of memory");
  float *restrict w = H.data + wOff;
  for (int64_t i = 0; i < rows; i++) {
    const float *restrict r = w + i * cols;
    for (int64_t j = 0; j < cols; j++) ss[j] += r[j] * r[j];
  }
  const float mv = (float)maxValue;
  int64_t scaled = 0;
  for (int64_t j = 0; j < cols; j++) {
    const float norm = sqrtf(ss[j]);
    const float s = mv / norm;
    ss[j] = (s < 1.0f || s != s) ? s : 1.0f; /* 0 norm: mv/0 = inf -> 1; a NaN norm makes the column NaN (as tfjs's minimum) */
    if (ss[j] != 1.0f) scaled++;
  }
  if (scaled > 0) {
    for (int64_t i = 0; i < rows; i++) {
      float *restrict r = w + i * cols;
      for (int64_t j = 0; j < cols; j++) r[j] = r[j] * ss[j];
    }
  }
  free(ss);
  napi_value out;
  CHECK(env, napi_create_int64(env, scaled, &out));
  return out;
}

/*
 * colSum(H, xOff, rows, cols, outOff): out[j] = sum_i x[i * cols + j] (float32, rows in order),
 * i.e. a reduction over the leading axes of a row-major tensor.
 */
static napi_value js_col_sum(napi_env env, napi_callback_info info) {
  ARGS(5, "colSum");
  fview H;
  int64_t xOff, rows, cols, outOff;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &xOff) || !get_i64(env, argv[2], &rows) ||
      !get_i64(env, argv[3], &cols) || !get_i64(env, argv[4], &outOff))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (rows < 0 || cols < 0 || xOff < 0 || outOff < 0 || xOff + rows * cols > len || outOff + cols > len)
    THROW(env, "distill_blas.colSum: range outside the array");
  if (outOff < xOff + rows * cols && xOff < outOff + cols && rows * cols > 0) THROW(env, "distill_blas.colSum: input and output overlap");
  col_sum(H.data + outOff, H.data + xOff, rows, cols);
  return NULL;
}

/* dx = dy * step(x), step(x) = x > 0 ? 1 : 0 and NaN for NaN x (tfjs's Step): the relu gradient
 * `mul(dy, cast(step(x)))` in one pass, with the same float32 results (0 * inf = NaN, -0 kept). */
__attribute__((noinline)) static void relu_grad(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = x[i] > 0.0f ? 1.0f : (x[i] != x[i] ? x[i] : 0.0f);
    dx[i] = dy[i] * s;
  }
}

/* d = d * step(x) in place (relu_grad with dx = dy). */
__attribute__((noinline)) static void relu_grad_in_place(float *d, const float *restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = x[i] > 0.0f ? 1.0f : (x[i] != x[i] ? x[i] : 0.0f);
    d[i] = d[i] * s;
  }
}

/*
 * reluGrad(H, dyOff, xOff, outOff, n): out = dy * step(x) elementwise (relu's gradient). The output
 * must not overlap the inputs, except that it may be dy itself (in place).
 */
static napi_value js_relu_grad(napi_env env, napi_callback_info info) {
  ARGS(5, "reluGrad");
  fview H;
  int64_t dyOff, xOff, outOff, n;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &dyOff) || !get_i64(env, argv[2], &xOff) ||
      !get_i64(env, argv[3], &outOff) || !get_i64(env, argv[4], &n))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (n < 0 || dyOff < 0 || xOff < 0 || outOff < 0 || dyOff + n > len || xOff + n > len || outOff + n > len)
    THROW(env, "distill_blas.reluGrad: range outside the array");
  if (n > 0 && ((outOff != dyOff && outOff < dyOff + n && dyOff < outOff + n) || (outOff < xOff + n && xOff < outOff + n)))
    THROW(env, "distill_blas.reluGrad: output overlaps an input");
  if (outOff == dyOff) relu_grad_in_place(H.data + outOff, H.data + xOff, n);
  else relu_grad(H.data + outOff, H.data + dyOff, H.data + xOff, n);
  return NULL;
}

__attribute__((noinline)) static void relu_copy(float *restrict out, const float *restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* relu(H, xOff, outOff, n): out = x < 0 ? 0 : x (tfjs's Relu: NaN stays NaN, -0 stays -0). */
static napi_value js_relu(napi_env env, napi_callback_info info) {
  ARGS(4, "relu");
  fview H;
  int64_t xOff, outOff, n;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &xOff) || !get_i64(env, argv[2], &outOff) || !get_i64(env, argv[3], &n))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (n < 0 || xOff < 0 || outOff < 0 || xOff + n > len || outOff + n > len) THROW(env, "distill_blas.relu: range outside the array");
  if (n > 0 && outOff < xOff + n && xOff < outOff + n) THROW(env, "distill_blas.relu: output overlaps the input");
  relu_copy(H.data + outOff, H.data + xOff, n);
  return NULL;
}

__attribute__((noinline)) static void add_bcast_row(float *restrict out, const float *restrict a, const float *restrict b, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = a[j] + b[j];
}
__attribute__((noinline)) static void add_bcast_scalar(float *restrict out, const float *restrict a, float b, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = a[j] + b;
}

/*
 * addRows(H, aOff, rows, cols, bOff, bLen, outOff): out[i, j] = a[i, j] + b[j] (bLen = cols),
 * b[0] (bLen = 1) or b[i, j] (bLen = rows * cols): a float32 Add whose second operand is the same
 * shape, a row broadcast over the leading axes (a bias) or a scalar. Inputs may alias each other;
 * the output must not overlap them.
 */
static napi_value js_add_rows(napi_env env, napi_callback_info info) {
  ARGS(7, "addRows");
  fview H;
  int64_t aOff, rows, cols, bOff, bLen, outOff;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &aOff) || !get_i64(env, argv[2], &rows) ||
      !get_i64(env, argv[3], &cols) || !get_i64(env, argv[4], &bOff) || !get_i64(env, argv[5], &bLen) || !get_i64(env, argv[6], &outOff))
    return NULL;
  const int64_t len = (int64_t)H.length;
  const int64_t n = rows * cols;
  if (rows < 0 || cols < 0 || aOff < 0 || bOff < 0 || outOff < 0 || aOff + n > len || outOff + n > len || bOff + bLen > len)
    THROW(env, "distill_blas.addRows: range outside the array");
  if (!(bLen == 1 || bLen == cols || bLen == n)) THROW(env, "distill_blas.addRows: b must have length 1, cols or rows * cols");
  if (n > 0 && ((outOff < aOff + n && aOff < outOff + n) || (outOff < bOff + bLen && bOff < outOff + n)))
    THROW(env, "distill_blas.addRows: output overlaps an input");
  if (n == 0) return NULL;
  float *out = H.data + outOff;
  const float *a = H.data + aOff, *b = H.data + bOff;
  if (bLen == n) add_bcast_row(out, a, b, n);
  else if (bLen == 1) add_bcast_scalar(out, a, b[0], n);
  else
    for (int64_t i = 0; i < rows; i++) add_bcast_row(out + i * cols, a + i * cols, b, cols);
  return NULL;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * adviseHugePages(H, collapse): asks the kernel to back the memory of H (e.g. the whole wasm heap)
 * with transparent huge pages (madvise MADV_HUGEPAGE on the 2 MiB-aligned part of it), and with
 * collapse also to convert the pages already in use now (MADV_COLLAPSE, Linux 6.1+). Fewer TLB
 * misses in sgemm's packing and the streaming kernels. Only a hint: returns the number of bytes
 * advised, or -errno when the kernel refused (e.g. THP disabled); never throws for that.
 */
static napi_value js_advise_huge_pages(napi_env env, napi_callback_info info) {
  ARGS(2, "adviseHugePages");
  fview H;
  int collapse;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_bool(env, argv[1], &collapse)) return NULL;
  const uintptr_t huge = (uintptr_t)2 << 20;
  const uintptr_t start = ((uintptr_t)H.data + huge - 1) & ~(huge - 1);
  const uintptr_t end = ((uintptr_t)H.data + H.length * sizeof(float)) & ~(huge - 1);
  double result = 0;
  if (end > start) {
    result = (double)(end - start);
    if (madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) result = -(double)errno;
    else if (collapse) (void)madvise((void *)start, end - start, MADV_COLLAPSE); /* best effort */
  }
  napi_value r;
  CHECK(env, napi_create_double(env, result, &r));
  return r;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t n;
  if (argc != 1 || !get_i64(env, argv[0], &n)) return NULL;
  if (n < 1 || n > 1024) THROW(env, "distill_blas.setThreads: n must be between 1 and 1024");
  openblas_set_num_threads((int)n);
  return NULL;
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
  napi_value r;
  CHECK(env, napi_create_int32(env, openblas_get_num_threads(), &r));
  return r;
}

static napi_value js_config(napi_env env, napi_callback_info info) {
  napi_value r;
  const char *c = openblas_get_config();
  CHECK(env, napi_create_string_utf8(env, c ? c : "OpenBLAS", NAPI_AUTO_LENGTH, &r));
  return r;
}


/* ---------------------------------------------------------------------------------------------
 * Vectorisable float32 exp and log (Cephes' expf / logf: range reduction and a polynomial, within
 * 2 ulp of the correctly rounded result on their domains; no calls, no branches, so GCC turns the
 * loops below into SIMD code, where libm's expf / logf run one element at a time). exp(x) for
 * x < -87.33 is 0 (libm gives a denormal), for x > 88.37 it is +inf; NaN stays NaN.
 * ------------------------------------------------------------------------------------------- */

typedef union {
  float f;
  uint32_t u;
} f32_bits;

static inline float bits_to_f32(uint32_t u) {
  f32_bits b = {.u = u};
  return b.f;
}

static inline uint32_t f32_to_bits(float f) {
  f32_bits b = {.f = f};
  return b.u;
}

static inline float fast_expf(float x) {
  const float lo = -87.33654475f, hi = 88.37626266f;
  const int under = x < lo, over = x > hi;
  float xc = x < lo ? lo : (x > hi ? hi : x);
  const float fx = floorf(xc * 1.44269504088896341f + 0.5f);
  xc = xc - fx * 0.693359375f;
  xc = xc - fx * -2.12194440e-4f;
  const float z = xc * xc;
  float y = 1.9875691500e-4f;
  y = y * xc + 1.3981999507e-3f;
  y = y * xc + 8.3334519073e-3f;
  y = y * xc + 4.1665795894e-2f;
  y = y * xc + 1.6666665459e-1f;
  y = y * xc + 5.0000001201e-1f;
  y = y * z + xc + 1.0f;
  /* 2^fx in two halves (fx in [-126, 128]: 2^128 alone is not a float) */
  const int32_t n = (int32_t)fx;
  const int32_t n1 = n >> 1, n2 = n - n1;
  const float r = y * bits_to_f32((uint32_t)(n1 + 127) << 23) * bits_to_f32((uint32_t)(n2 + 127) << 23);
  return x != x ? x : (under ? 0.0f : (over ? INFINITY : r));
}

/* log(x) for normal x > 0 (callers clamp to >= 1e-30). */
static inline float fast_logf(float x) {
  const uint32_t u = f32_to_bits(x);
  float e = (float)((int32_t)((u >> 23) & 0xff) - 126);
  float m = bits_to_f32((u & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
  const int small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + e * 0.693359375f;
}

/* max over v[0..n) ignoring NaNs (-inf when all are NaN or n = 0), in 8 lanes. */
static float max_f32(const float *restrict v, int64_t n) {
  float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) m[k] = v[j + k] > m[k] ? v[j + k] : m[k];
  for (; j < n; j++) m[0] = v[j] > m[0] ? v[j] : m[0];
  float r = m[0];
  for (int k = 1; k < 8; k++) r = m[k] > r ? m[k] : r;
  return r;
}

/* sum of v[0..n) in double, 8 partial sums. */
static double sum_f32(const float *restrict v, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) s[k] += (double)v[j + k];
  for (; j < n; j++) s[0] += (double)v[j];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* out[j] = exp(scale * v[j] - m); returns the sum in double. */
static double exp_shift(float *restrict out, const float *restrict v, int64_t n, float scale, float m) {
  for (int64_t j = 0; j < n; j++) out[j] = fast_expf(v[j] * scale - m);
  return sum_f32(out, n);
}

/*
 * Row r of the fused softmax cross-entropy (see js_softmax_xent). Returns the row's loss
 * alpha * T^2 * CE(pT, qT) + (1 - alpha) * CE(y, q1) and writes its gradient (already divided by
 * the batch size B) to g. `scratch` holds 2 * C floats. Exps and logs by fast_expf / fast_logf
 * (SIMD), maxima and sums in 8 lanes, sums in double.
 */
static double xent_row(const float *restrict z, const float *restrict t, int32_t y, int64_t C, double T, double alpha,
                       int kind, double invB, float *restrict g, float *restrict scratch) {
  double loss = 0.0;
  const float invT = (float)(1.0 / T);
  const int tempered = T != 1.0;
  const float sc = tempered ? invT : 1.0f; /* z * 1.0f == z exactly */
  float *restrict eq = scratch;     /* exp(z/T - m): unnormalised qT */
  float *restrict e1 = scratch + C; /* exp(z - m1): unnormalised q1 */
  if (alpha > 0.0) {
    float m = -INFINITY;
    if (tempered) {
      for (int64_t j = 0; j < C; j++) e1[j] = z[j] * invT;
      m = max_f32(e1, C);
    } else m = max_f32(z, C);
    const double s = exp_shift(eq, z, C, sc, m);
    const double lse = (double)m + log(s); /* log qT[j] = z[j]/T - lse */
    const double is = 1.0 / s;
    const double coef = alpha * T * invB; /* d(alpha T^2 CE)/dz = alpha T (qT - pT), per row / B */
    double ce = 0.0;
    if (kind == 1 && !tempered) {
      /* probabilities at T = 1: used as given */
      for (int64_t j = 0; j < C; j++) {
        const double p = (double)t[j];
        ce -= p * ((double)z[j] - lse);
        g[j] = (float)(coef * ((double)eq[j] * is - p));
      }
    } else {
      /* pT = softmax(u / T), u = t (logits) or log(max(t, 1e-30)); g holds u/T, then exp(u/T - mp) */
      if (kind == 1)
        for (int64_t j = 0; j < C; j++) g[j] = fast_logf(t[j] > 1e-30f ? t[j] : 1e-30f) * sc;
      else
        for (int64_t j = 0; j < C; j++) g[j] = t[j] * sc;
      const float mp = max_f32(g, C);
      for (int64_t j = 0; j < C; j++) g[j] = fast_expf(g[j] - mp);
      const double isp = 1.0 / sum_f32(g, C);
      double c8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= C; j += 8)
        for (int k = 0; k < 8; k++) {
          const double p = (double)g[j + k] * isp;
          c8[k] -= p * ((double)(z[j + k] * sc) - lse);
          g[j + k] = (float)(coef * ((double)eq[j + k] * is - p));
        }
      for (; j < C; j++) {
        const double p = (double)g[j] * isp;
        c8[0] -= p * ((double)(z[j] * sc) - lse);
        g[j] = (float)(coef * ((double)eq[j] * is - p));
      }
      ce = ((c8[0] + c8[1]) + (c8[2] + c8[3])) + ((c8[4] + c8[5]) + (c8[6] + c8[7]));
    }
    loss += alpha * T * T * ce;
  } else {
    for (int64_t j = 0; j < C; j++) g[j] = 0.0f;
  }
  if (alpha < 1.0 && y >= 0) {
    const float m = max_f32(z, C);
    const double s = exp_shift(e1, z, C, 1.0f, m);
    const double w = (1.0 - alpha) * invB;
    const double ws = w / s;
    for (int64_t j = 0; j < C; j++) g[j] += (float)(ws * (double)e1[j]);
    g[y] -= (float)w;
    loss += (1.0 - alpha) * ((double)m + log(s) - (double)z[y]);
  }
  return loss;
}

/*
 * softmaxXent(H, zOff, tOff, yOff, B, C, T, alpha, kind, gradOff): the paper's distillation loss
 * on a B x C batch of student logits z, in one pass per row, with its gradient:
 *   loss = mean_b [ alpha * T^2 * CE(pT, softmax(z/T)) + (1 - alpha) * CE(y, softmax(z)) ]
 *   grad = alpha * T * (softmax(z/T) - pT) / B + (1 - alpha) * (softmax(z) - onehot(y)) / B
 * pT from the teacher rows t (kind 0: logits, softmax(t/T); kind 1: probabilities, used as given at
 * T = 1, else softmax(log(max(t, 1e-30))/T)). Labels y are int32 stored in H's buffer at element
 * offset yOff (-1 on a row: no hard term there); tOff < 0 allowed when alpha = 0, yOff < 0 when
 * alpha = 1. Writes the B x C gradient at gradOff (must not overlap the inputs); returns the loss.
 */
static napi_value js_softmax_xent(napi_env env, napi_callback_info info) {
  ARGS(10, "softmaxXent");
  fview H;
  int64_t zOff, tOff, yOff, B, C, kind, gOff;
  double T, alpha;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &zOff) || !get_i64(env, argv[2], &tOff) || !get_i64(env, argv[3], &yOff) ||
      !get_i64(env, argv[4], &B) || !get_i64(env, argv[5], &C) || !get_f64(env, argv[6], &T) || !get_f64(env, argv[7], &alpha) ||
      !get_i64(env, argv[8], &kind) || !get_i64(env, argv[9], &gOff))
    return NULL;
  const int64_t len = (int64_t)H.length;
  const int64_t n = B * C;
  if (B < 0 || C <= 0 || !(T > 0.0) || !(alpha >= 0.0 && alpha <= 1.0) || (kind != 0 && kind != 1)) THROW(env, "distill_blas.softmaxXent: bad B, C, T, alpha or kind");
  if (zOff < 0 || zOff + n > len || gOff < 0 || gOff + n > len) THROW(env, "distill_blas.softmaxXent: range outside the array");
  if (alpha > 0.0 && (tOff < 0 || tOff + n > len)) THROW(env, "distill_blas.softmaxXent: the soft term needs teacher rows inside the array");
  if (alpha < 1.0 && (yOff < 0 || yOff + B > len)) THROW(env, "distill_blas.softmaxXent: the hard term needs labels inside the array");
  if (n > 0 && ((gOff < zOff + n && zOff < gOff + n) || (alpha > 0.0 && gOff < tOff + n && tOff < gOff + n) || (alpha < 1.0 && gOff < yOff + B && yOff < gOff + n)))
    THROW(env, "distill_blas.softmaxXent: the gradient overlaps an input");
  float *scratch = (float *)malloc((size_t)C * 2 * sizeof(float));
  if (!scratch) THROW(env, "distill_blas.softmaxXent: out of memory");
  const double invB = B > 0 ? 1.0 / (double)B : 0.0;
  double total = 0.0;
  for (int64_t r = 0; r < B; r++) {
    int32_t y = -1;
    if (alpha < 1.0) memcpy(&y, H.data + yOff + r, sizeof y);
    if (y >= C) {
      free(scratch);
      THROW(env, "distill_blas.softmaxXent: a label is >= the number of classes");
    }
    total += xent_row(H.data + zOff + r * C, alpha > 0.0 ? H.data + tOff + r * C : NULL, y, C, T, alpha, (int)kind, invB, H.data + gOff + r * C, scratch);
  }
  free(scratch);
  napi_value out;
  CHECK(env, napi_create_double(env, total * invB, &out));
  return out;
}

/*
 * argmaxHits(H, zOff, yOff, B, C): how many of the B rows of logits z (B x C at zOff) have their
 * first maximal entry at the row's label (int32 in H's buffer at element offset yOff): tf.argMax's
 * rule, NaNs never maximal except a NaN first entry, which wins (as a running `v > best` scan
 * starting from entry 0 gives).
 */
static napi_value js_argmax_hits(napi_env env, napi_callback_info info) {
  ARGS(5, "argmaxHits");
  fview H;
  int64_t zOff, yOff, B, C;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64(env, argv[1], &zOff) || !get_i64(env, argv[2], &yOff) ||
      !get_i64(env, argv[3], &B) || !get_i64(env, argv[4], &C))
    return NULL;
  const int64_t len = (int64_t)H.length;
  if (B < 0 || C <= 0 || zOff < 0 || yOff < 0 || zOff + B * C > len || yOff + B > len) THROW(env, "distill_blas.argmaxHits: range outside the array");
  int64_t hits = 0;
  for (int64_t r = 0; r < B; r++) {
    const float *row = H.data + zOff + r * C;
    int32_t y;
    memcpy(&y, H.data + yOff + r, sizeof y);
    int64_t best = 0;
    if (row[0] == row[0]) {
      const float m = max_f32(row, C);
      while (best < C && !(row[best] == m)) best++;
    }
    if (best == (int64_t)y) hits++;
  }
  napi_value out;
  CHECK(env, napi_create_int64(env, hits, &out));
  return out;
}

/* ---------------------------------------------------------------------------------------------
 * Convolution (NHWC, filters [fH, fW, inC, outC]) by im2col + sgemm, and max-pooling.
 * Geometry comes as an Int32Array of 15 values:
 *   [N, inH, inW, inC, fH, fW, outC, sH, sW, dH, dW, padTop, padLeft, outH, outW]
 * (pooling: outC = inC). Rows of the im2col matrix are the output pixels (n, oh, ow) in order;
 * columns are (kh, kw, c), the filter's row order, so the filter is the K x outC right operand.
 * Out-of-image taps read 0 (convolution) or are skipped (pooling).
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int64_t N, inH, inW, inC, fH, fW, outC, sH, sW, dH, dW, padT, padL, outH, outW;
} geom_t;

/* Floats of im2col rows materialised at once (8 MiB): bounds the scratch memory for any batch. */
#define COL_CHUNK_FLOATS ((int64_t)1 << 21)

static _Thread_local float *col_buf = NULL;
static _Thread_local size_t col_cap = 0;

static float *col_scratch(size_t n) {
  if (n > col_cap) {
    float *p = (float *)realloc(col_buf, n * sizeof(float));
    if (!p) return NULL;
    col_buf = p;
    col_cap = n;
  }
  return col_buf;
}

static int get_geom(napi_env env, napi_value v, geom_t *g, const char *fn) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  napi_typedarray_type tt;
  void *data;
  size_t len;
  if (!is_ta || napi_get_typedarray_info(env, v, &tt, &len, &data, NULL, NULL) != napi_ok || tt != napi_int32_array || len != 15) {
    char msg[160];
    snprintf(msg, sizeof msg, "distill_blas.%s: geometry must be an Int32Array of 15 values", fn);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  const int32_t *a = (const int32_t *)data;
  g->N = a[0]; g->inH = a[1]; g->inW = a[2]; g->inC = a[3]; g->fH = a[4]; g->fW = a[5]; g->outC = a[6];
  g->sH = a[7]; g->sW = a[8]; g->dH = a[9]; g->dW = a[10]; g->padT = a[11]; g->padL = a[12]; g->outH = a[13]; g->outW = a[14];
  if (g->N < 0 || g->inH < 1 || g->inW < 1 || g->inC < 1 || g->fH < 1 || g->fW < 1 || g->outC < 1 || g->sH < 1 || g->sW < 1 ||
      g->dH < 1 || g->dW < 1 || g->outH < 0 || g->outW < 0 || g->padT < -(1 << 20) || g->padL < -(1 << 20) || g->padT > (1 << 20) || g->padL > (1 << 20)) {
    char msg[160];
    snprintf(msg, sizeof msg, "distill_blas.%s: bad geometry (sizes, strides and dilations must be >= 1)", fn);
    napi_throw_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

/* [a, a + na) and [b, b + nb) overlap (both non-empty). */
static int overlaps(int64_t a, int64_t na, int64_t b, int64_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

/* Row-major sgemm; small products on one OpenBLAS thread (as js_sgemm). */
static void gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc) {
  const int threads = openblas_get_num_threads();
  const int single = threads > 1 && (double)M * (double)N * (double)K < SINGLE_THREAD_MNK;
  if (single) openblas_set_num_threads(1);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
              (int)ldb, beta, C, (int)ldc);
  if (single) openblas_set_num_threads(threads);
}

/* im2col rows [m0, m0 + R) of x into col (R x K). */
static void im2col(const float *restrict x, const geom_t *g, int64_t m0, int64_t R, float *restrict col) {
  const int64_t C = g->inC, K = g->fH * g->fW * C, span = g->fW * C;
  for (int64_t r = 0; r < R; r++) {
    const int64_t m = m0 + r;
    const int64_t ow = m % g->outW, t = m / g->outW, oh = t % g->outH, n = t / g->outH;
    float *dst = col + r * K;
    const int64_t iw0 = ow * g->sW - g->padL;
    const int contiguous = g->dW == 1 && iw0 >= 0 && iw0 + g->fW <= g->inW;
    for (int64_t kh = 0; kh < g->fH; kh++, dst += span) {
      const int64_t ih = oh * g->sH + kh * g->dH - g->padT;
      if (ih < 0 || ih >= g->inH) {
        memset(dst, 0, (size_t)span * sizeof(float));
        continue;
      }
      const float *xrow = x + ((n * g->inH + ih) * g->inW) * C;
      if (contiguous) {
        memcpy(dst, xrow + iw0 * C, (size_t)span * sizeof(float));
        continue;
      }
      for (int64_t kw = 0; kw < g->fW; kw++) {
        const int64_t iw = iw0 + kw * g->dW;
        if (iw < 0 || iw >= g->inW) memset(dst + kw * C, 0, (size_t)C * sizeof(float));
        else memcpy(dst + kw * C, xrow + iw * C, (size_t)C * sizeof(float));
      }
    }
  }
}

/* The transpose of im2col, accumulating: dx[taps of row m] += col[r] for rows [m0, m0 + R). */
static void col2im_add(float *restrict dx, const geom_t *g, int64_t m0, int64_t R, const float *restrict col) {
  const int64_t C = g->inC, K = g->fH * g->fW * C;
  for (int64_t r = 0; r < R; r++) {
    const int64_t m = m0 + r;
    const int64_t ow = m % g->outW, t = m / g->outW, oh = t % g->outH, n = t / g->outH;
    const float *src = col + r * K;
    const int64_t iw0 = ow * g->sW - g->padL;
    for (int64_t kh = 0; kh < g->fH; kh++) {
      const int64_t ih = oh * g->sH + kh * g->dH - g->padT;
      if (ih < 0 || ih >= g->inH) continue;
      float *dxrow = dx + ((n * g->inH + ih) * g->inW) * C;
      const float *s = src + kh * g->fW * C;
      for (int64_t kw = 0; kw < g->fW; kw++) {
        const int64_t iw = iw0 + kw * g->dW;
        if (iw < 0 || iw >= g->inW) continue;
        float *restrict d = dxrow + iw * C;
        const float *restrict v = s + kw * C;
        for (int64_t c = 0; c < C; c++) d[c] += v[c];
      }
    }
  }
}

/* A 1x1, stride-1, unpadded convolution: the im2col matrix is x itself. */
static int pointwise(const geom_t *g) {
  return g->fH == 1 && g->fW == 1 && g->sH == 1 && g->sW == 1 && g->padT == 0 && g->padL == 0 && g->outH == g->inH && g->outW == g->inW;
}

/* Whether the element ranges of a convolution's x, filter and y lie inside an array of len elements. */
static int conv_ranges(const geom_t *g, int64_t len, int64_t xOff, int64_t fOff, int64_t yOff) {
  const int64_t nx = g->N * g->inH * g->inW * g->inC, nf = g->fH * g->fW * g->inC * g->outC, ny = g->N * g->outH * g->outW * g->outC;
  return xOff >= 0 && fOff >= 0 && yOff >= 0 && xOff + nx <= len && fOff + nf <= len && yOff + ny <= len;
}

/* Rows of the im2col matrix materialised at once for K columns (at most M, at least 1), and this
 * thread's scratch for them in *col (NULL when out of memory). */
static int64_t col_chunk(int64_t K, int64_t M, float **col) {
  int64_t R = COL_CHUNK_FLOATS / K;
  if (R > M) R = M;
  if (R < 1) R = 1;
  *col = col_scratch((size_t)(R * K));
  return R;
}

#define CONV_ARGS(fn)                                                                                        \
  ARGS(5, fn);                                                                                               \
  fview H;                                                                                                   \
  geom_t g;                                                                                                  \
  int64_t a0, a1, a2;                                                                                        \
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_geom(env, argv[1], &g, fn) || !get_i64(env, argv[2], &a0) || \
      !get_i64(env, argv[3], &a1) || !get_i64(env, argv[4], &a2))                                            \
    return NULL;                                                                                             \
  const int64_t len = (int64_t)H.length;                                                                     \
  const int64_t M = g.N * g.outH * g.outW, K = g.fH * g.fW * g.inC;                                          \
  const int64_t nx = g.N * g.inH * g.inW * g.inC, ny = M * g.outC;                                           \
  (void)nx;                                                                                                  \
  (void)K;                                                                                                   \
  (void)ny;

/*
 * conv2d(H, geom, xOff, fOff, yOff): y[N, outH, outW, outC] = conv(x[N, inH, inW, inC],
 * f[fH, fW, inC, outC]) with the geometry's strides, dilations and padding (zeros outside).
 */
static napi_value js_conv2d(napi_env env, napi_callback_info info) {
  CONV_ARGS("conv2d")
  const int64_t xOff = a0, fOff = a1, yOff = a2;
  if (!conv_ranges(&g, len, xOff, fOff, yOff)) THROW(env, "distill_blas.conv2d: range outside the array");
  if (overlaps(yOff, ny, xOff, nx) || overlaps(yOff, ny, fOff, K * g.outC)) THROW(env, "distill_blas.conv2d: the output overlaps an input");
  if (M == 0) return NULL;
  const float *x = H.data + xOff, *f = H.data + fOff;
  float *y = H.data + yOff;
  if (pointwise(&g)) {
    gemm(0, 0, M, g.outC, K, 1.0f, x, K, f, g.outC, 0.0f, y, g.outC);
    return NULL;
  }
  float *col;
  const int64_t R = col_chunk(K, M, &col);
  if (!col) THROW(env, "distill_blas.conv2d: out of memory");
  for (int64_t m0 = 0; m0 < M; m0 += R) {
    const int64_t r = M - m0 < R ? M - m0 : R;
    im2col(x, &g, m0, r, col);
    gemm(0, 0, r, g.outC, K, 1.0f, col, K, f, g.outC, 0.0f, y + m0 * g.outC, g.outC);
  }
  return NULL;
}

/*
 * conv2dBackpropInput(H, geom, dyOff, fOff, dxOff): dx[N, inH, inW, inC] = the gradient of conv2d
 * w.r.t. its input for the output gradient dy[N, outH, outW, outC] (col2im of dy f^T).
 */
static napi_value js_conv2d_backprop_input(napi_env env, napi_callback_info info) {
  CONV_ARGS("conv2dBackpropInput")
  const int64_t dyOff = a0, fOff = a1, dxOff = a2;
  if (!conv_ranges(&g, len, dxOff, fOff, dyOff)) THROW(env, "distill_blas.conv2dBackpropInput: range outside the array");
  if (overlaps(dxOff, nx, dyOff, ny) || overlaps(dxOff, nx, fOff, K * g.outC)) THROW(env, "distill_blas.conv2dBackpropInput: the output overlaps an input");
  float *dx = H.data + dxOff;
  const float *dy = H.data + dyOff, *f = H.data + fOff;
  if (pointwise(&g)) {
    if (M > 0) gemm(0, 1, M, K, g.outC, 1.0f, dy, g.outC, f, g.outC, 0.0f, dx, K);
    return NULL;
  }
  memset(dx, 0, (size_t)nx * sizeof(float));
  if (M == 0) return NULL;
  float *col;
  const int64_t R = col_chunk(K, M, &col);
  if (!col) THROW(env, "distill_blas.conv2dBackpropInput: out of memory");
  for (int64_t m0 = 0; m0 < M; m0 += R) {
    const int64_t r = M - m0 < R ? M - m0 : R;
    gemm(0, 1, r, K, g.outC, 1.0f, dy + m0 * g.outC, g.outC, f, g.outC, 0.0f, col, K);
    col2im_add(dx, &g, m0, r, col);
  }
  return NULL;
}

/*
 * conv2dBackpropFilter(H, geom, xOff, dyOff, dwOff): dw[fH, fW, inC, outC] = the gradient of
 * conv2d w.r.t. its filter: im2col(x)^T dy, summed over the batch.
 */
static napi_value js_conv2d_backprop_filter(napi_env env, napi_callback_info info) {
  CONV_ARGS("conv2dBackpropFilter")
  const int64_t xOff = a0, dyOff = a1, dwOff = a2;
  if (!conv_ranges(&g, len, xOff, dwOff, dyOff)) THROW(env, "distill_blas.conv2dBackpropFilter: range outside the array");
  const int64_t nf = K * g.outC;
  if (overlaps(dwOff, nf, xOff, nx) || overlaps(dwOff, nf, dyOff, ny)) THROW(env, "distill_blas.conv2dBackpropFilter: the output overlaps an input");
  float *dw = H.data + dwOff;
  const float *x = H.data + xOff, *dy = H.data + dyOff;
  if (M == 0) {
    memset(dw, 0, (size_t)nf * sizeof(float));
    return NULL;
  }
  if (pointwise(&g)) {
    gemm(1, 0, K, g.outC, M, 1.0f, x, K, dy, g.outC, 0.0f, dw, g.outC);
    return NULL;
  }
  float *col;
  const int64_t R = col_chunk(K, M, &col);
  if (!col) THROW(env, "distill_blas.conv2dBackpropFilter: out of memory");
  for (int64_t m0 = 0; m0 < M; m0 += R) {
    const int64_t r = M - m0 < R ? M - m0 : R;
    im2col(x, &g, m0, r, col);
    gemm(1, 0, K, g.outC, r, 1.0f, col, K, dy + m0 * g.outC, g.outC, m0 == 0 ? 0.0f : 1.0f, dw, g.outC);
  }
  return NULL;
}

/*
 * The in-image taps of output pixel m's pooling window: the element offset of each in x (pixel
 * (n, ih, iw), channel 0) and its row-major index in the window (kh * fW + kw). Returns how many
 * there are (at most fH * fW).
 */
static int64_t window_taps(const geom_t *g, int64_t m, int64_t *restrict off, int32_t *restrict idx) {
  const int64_t ow = m % g->outW, t = m / g->outW, oh = t % g->outH, n = t / g->outH;
  int64_t k = 0;
  for (int64_t kh = 0; kh < g->fH; kh++) {
    const int64_t ih = oh * g->sH + kh * g->dH - g->padT;
    if (ih < 0 || ih >= g->inH) continue;
    for (int64_t kw = 0; kw < g->fW; kw++) {
      const int64_t iw = ow * g->sW + kw * g->dW - g->padL;
      if (iw < 0 || iw >= g->inW) continue;
      off[k] = (((n * g->inH + ih) * g->inW) + iw) * g->inC;
      idx[k] = (int32_t)(kh * g->fW + kw);
      k++;
    }
  }
  return k;
}

/* Scratch for window_taps (fH * fW entries each); 0 when out of memory (both freed). */
static int taps_alloc(const geom_t *g, int64_t **off, int32_t **idx) {
  const size_t n = (size_t)(g->fH * g->fW);
  *off = (int64_t *)malloc(n * sizeof(int64_t));
  *idx = (int32_t *)malloc(n * sizeof(int32_t));
  if (*off && *idx) return 1;
  free(*off);
  free(*idx);
  return 0;
}

/* Checks a pooling call: outC = inC, x [N, inH, inW, C], the pooled [M, C] and (gradient) dx in the
 * array, no output overlapping an input; throws and returns 0 otherwise. */
static int pool_ranges(napi_env env, const geom_t *g, int64_t len, int64_t xOff, int64_t pOff, int64_t dxOff, const char *fn) {
  const int64_t nx = g->N * g->inH * g->inW * g->inC, np = g->N * g->outH * g->outW * g->inC;
  const char *why = NULL;
  if (g->outC != g->inC) why = "outC must equal inC";
  else if (xOff < 0 || pOff < 0 || xOff + nx > len || pOff + np > len || (dxOff >= 0 && dxOff + nx > len)) why = "range outside the array";
  else if (dxOff < 0 ? overlaps(pOff, np, xOff, nx) : overlaps(dxOff, nx, xOff, nx) || overlaps(dxOff, nx, pOff, np))
    why = dxOff < 0 ? "the output overlaps the input" : "the output overlaps an input";
  if (!why) return 1;
  char msg[160];
  snprintf(msg, sizeof msg, "distill_blas.%s: %s", fn, why);
  napi_throw_error(env, NULL, msg);
  return 0;
}

/*
 * maxPool(H, geom, xOff, yOff, 0): y[n, oh, ow, c] = the max of x over the window's taps inside the
 * image (tfjs's semantics: NaN taps are skipped, an all-outside window gives -Infinity).
 */
static napi_value js_max_pool(napi_env env, napi_callback_info info) {
  CONV_ARGS("maxPool")
  const int64_t xOff = a0, yOff = a1;
  (void)a2;
  const int64_t C = g.inC;
  if (!pool_ranges(env, &g, len, xOff, yOff, -1, "maxPool")) return NULL;
  const float *x = H.data + xOff;
  float *y = H.data + yOff;
  int64_t *off;
  int32_t *idx;
  if (!taps_alloc(&g, &off, &idx)) THROW(env, "distill_blas.maxPool: out of memory");
  for (int64_t m = 0; m < M; m++) {
    float *restrict out = y + m * C;
    for (int64_t c = 0; c < C; c++) out[c] = -INFINITY;
    const int64_t k = window_taps(&g, m, off, idx);
    for (int64_t j = 0; j < k; j++) {
      const float *restrict v = x + off[j];
      for (int64_t c = 0; c < C; c++) out[c] = v[c] > out[c] ? v[c] : out[c];
    }
  }
  free(off);
  free(idx);
  return NULL;
}

__attribute__((noinline)) static void pool_argmax_tap(float *restrict best, int32_t *restrict tap, const float *restrict v, int32_t t, int64_t C) {
  for (int64_t c = 0; c < C; c++) {
    const int gt = v[c] > best[c];
    best[c] = gt ? v[c] : best[c];
    tap[c] = gt ? t : tap[c];
  }
}

__attribute__((noinline)) static void pool_scatter_tap(float *restrict dx, const int32_t *restrict tap, const float *restrict d, int32_t t, int64_t C) {
  for (int64_t c = 0; c < C; c++) dx[c] += tap[c] == t ? d[c] : 0.0f;
}

/*
 * maxPoolGrad(H, geom, dyOff, xOff, dxOff): dx = the gradient of maxPool: each output's dy goes to
 * the first tap (row-major in the window) holding the window's maximum, as tfjs's cpu backend does.
 */
static napi_value js_max_pool_grad(napi_env env, napi_callback_info info) {
  CONV_ARGS("maxPoolGrad")
  const int64_t dyOff = a0, xOff = a1, dxOff = a2;
  const int64_t C = g.inC;
  if (dxOff < 0) THROW(env, "distill_blas.maxPoolGrad: range outside the array");
  if (!pool_ranges(env, &g, len, xOff, dyOff, dxOff, "maxPoolGrad")) return NULL;
  const float *x = H.data + xOff, *dy = H.data + dyOff;
  float *dx = H.data + dxOff;
  memset(dx, 0, (size_t)nx * sizeof(float));
  float *best = (float *)malloc((size_t)C * sizeof(float));
  int32_t *tap = (int32_t *)malloc((size_t)C * sizeof(int32_t));
  int64_t *off = NULL;
  int32_t *idx = NULL;
  if (!best || !tap || !taps_alloc(&g, &off, &idx)) {
    free(best);
    free(tap);
    THROW(env, "distill_blas.maxPoolGrad: out of memory");
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t c = 0; c < C; c++) {
      best[c] = -INFINITY;
      tap[c] = -1;
    }
    const int64_t k = window_taps(&g, m, off, idx);
    /* Pass 1: per channel, the first tap (row-major) holding the maximum; branch-free so it vectorizes. */
    for (int64_t j = 0; j < k; j++) pool_argmax_tap(best, tap, x + off[j], idx[j], C);
    /* Pass 2: each channel's dy to its tap. */
    for (int64_t j = 0; j < k; j++) pool_scatter_tap(dx + off[j], tap, dy + m * C, idx[j], C);
  }
  free(best);
  free(tap);
  free(off);
  free(idx);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Batch normalisation and per-channel reductions, channels last: a tensor is a rows x C block, C
 * its last axis (the channels of NHWC images, the units of a dense layer), rows all the others.
 * Per-channel parameters have length 1 (one value for every channel) or C. Sums run in double.
 * ------------------------------------------------------------------------------------------- */

/* Reads argv[0..n) as integers into out; 0 on failure (thrown). */
static int get_i64s(napi_env env, const napi_value *argv, int64_t *out, int n) {
  for (int k = 0; k < n; k++)
    if (!get_i64(env, argv[k], &out[k])) return 0;
  return 1;
}

/* Element ranges [off, off + n) of one call: each inside the array; outputs (the first nOut) not
 * overlapping each other or any input. Ranges with off < 0 are absent. */
typedef struct {
  int64_t off, n;
} range_t;

static const char *check_ranges(const range_t *r, int count, int nOut, int64_t len) {
  for (int i = 0; i < count; i++)
    if (r[i].off >= 0 && (r[i].n < 0 || r[i].off + r[i].n > len)) return "range outside the array";
  for (int i = 0; i < nOut; i++) {
    if (r[i].off < 0) continue;
    for (int j = 0; j < count; j++)
      if (j != i && r[j].off >= 0 && overlaps(r[i].off, r[i].n, r[j].off, r[j].n)) return "an output overlaps an input or another output";
  }
  return NULL;
}

#define THROW_WHY(env, fn, why)                                         \
  do {                                                                  \
    char msg_[160];                                                     \
    snprintf(msg_, sizeof msg_, "distill_blas." fn ": %s", (why));      \
    napi_throw_error((env), NULL, msg_);                                \
    return NULL;                                                        \
  } while (0)

/* Values per block of the per-channel loops: short rows (few channels) are handled BLOCK_VALUES / C
 * rows at a time, against parameters repeated that often, so that the loops stay long enough to
 * vectorise well and the call overhead per row vanishes. */
#define BLOCK_VALUES 1024

/* Rows per block for rows of C values (at least 1, at most rows when rows >= 1). */
static int64_t block_rows(int64_t C, int64_t rows) {
  int64_t R = C >= BLOCK_VALUES ? 1 : BLOCK_VALUES / C;
  if (R > rows) R = rows;
  return R < 1 ? 1 : R;
}

/* Repeats p[0..C) R times in place (p holds R * C values). */
static void repeat_block(double *p, int64_t C, int64_t R) {
  for (int64_t b = 1; b < R; b++) memcpy(p + b * C, p, (size_t)C * sizeof(double));
}

/* Element j of a per-channel parameter of length 1 or C. */
static inline double chan(const float *p, int64_t plen, int64_t j) {
  return (double)p[plen == 1 ? 0 : j];
}

__attribute__((noinline)) static void bn_forward_row(float *restrict y, const float *restrict x, const double *restrict mean,
                                                     const double *restrict k, const double *restrict offset, int64_t n) {
  for (int64_t j = 0; j < n; j++) y[j] = (float)(offset[j] + ((double)x[j] - mean[j]) * k[j]);
}

/*
 * bnForward(H, xOff, rows, C, meanOff, meanLen, varOff, varLen, offsetOff, offsetLen, scaleOff, scaleLen, outOff, eps):
 *   out[i, j] = offset[j] + (x[i, j] - mean[j]) * scale[j] / sqrt(variance[j] + eps)
 * (tfjs's FusedBatchNorm; each parameter of length 1 or C; offsetOff < 0: no offset (0), scaleOff
 * < 0: no scale (1)). In double, rounded once to float32, as tfjs's cpu kernel. The output must not
 * overlap the inputs.
 */
static napi_value js_bn_forward(napi_env env, napi_callback_info info) {
  ARGS(14, "bnForward");
  fview H;
  int64_t a[12];
  double eps;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 12) || !get_f64(env, argv[13], &eps)) return NULL;
  const int64_t xOff = a[0], rows = a[1], C = a[2], meanOff = a[3], meanLen = a[4], varOff = a[5], varLen = a[6];
  const int64_t offOff = a[7], offLen = a[8], scaleOff = a[9], scaleLen = a[10], outOff = a[11];
  if (rows < 0 || C < 1) THROW(env, "distill_blas.bnForward: rows must be >= 0 and C >= 1");
  const int64_t len = (int64_t)H.length;
  const int lens_ok = (meanLen == 1 || meanLen == C) && (varLen == 1 || varLen == C) && (offOff < 0 || offLen == 1 || offLen == C) &&
                      (scaleOff < 0 || scaleLen == 1 || scaleLen == C);
  if (!lens_ok || meanOff < 0 || varOff < 0) THROW(env, "distill_blas.bnForward: mean, variance, offset and scale must have length 1 or C");
  const range_t r[] = {{outOff, rows * C}, {xOff, rows * C}, {meanOff, meanLen}, {varOff, varLen}, {offOff, offLen}, {scaleOff, scaleLen}};
  const char *why = outOff < 0 || xOff < 0 ? "range outside the array" : check_ranges(r, 6, 1, len);
  if (why) THROW_WHY(env, "bnForward", why);
  const int64_t R = block_rows(C, rows), B = R * C;
  double *k = (double *)malloc((size_t)B * 3 * sizeof(double));
  if (!k) THROW(env, "distill_blas.bnForward: out of memory");
  double *mean = k + B, *offset = k + 2 * B;
  const float *m = H.data + meanOff, *v = H.data + varOff;
  for (int64_t j = 0; j < C; j++) {
    mean[j] = chan(m, meanLen, j);
    offset[j] = offOff < 0 ? 0.0 : chan(H.data + offOff, offLen, j);
    k[j] = (scaleOff < 0 ? 1.0 : chan(H.data + scaleOff, scaleLen, j)) / sqrt(chan(v, varLen, j) + eps);
  }
  repeat_block(k, C, R);
  repeat_block(mean, C, R);
  repeat_block(offset, C, R);
  const float *x = H.data + xOff;
  float *y = H.data + outOff;
  for (int64_t i = 0; i < rows; i += R) bn_forward_row(y + i * C, x + i * C, mean, k, offset, (rows - i < R ? rows - i : R) * C);
  free(k);
  return NULL;
}

__attribute__((noinline)) static void bn_grad_row(float *restrict dx, double *restrict s1, double *restrict s2, const float *restrict x,
                                                  const float *restrict dy, const double *restrict mean, const double *restrict k, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    const double d = (double)dy[j];
    s1[j] += d;
    s2[j] += d * ((double)x[j] - mean[j]);
    dx[j] = (float)(d * k[j]);
  }
}

/*
 * bnGrad(H, xOff, dyOff, rows, C, meanOff, varOff, scaleOff, dxOff, dmeanOff, dvarOff, dscaleOff, doffsetOff, eps):
 * the gradients of bnForward w.r.t. each of its inputs, given dy, for mean, variance and scale of
 * length C (scaleOff < 0: scale 1), in one pass over x and dy:
 *   r = 1 / sqrt(variance + eps);  dx = dy * r * scale;  doffset = sum_i dy;  dscale = r * sum_i dy (x - mean);
 *   dmean = -r * scale * sum_i dy;  dvariance = -r^3 / 2 * scale * sum_i dy (x - mean)
 * (the formulas of tfjs's FusedBatchNorm gradient, mean and variance taken as independent inputs).
 * dscaleOff / doffsetOff < 0: not written. Outputs must not overlap the inputs or each other.
 */
static napi_value js_bn_grad(napi_env env, napi_callback_info info) {
  ARGS(14, "bnGrad");
  fview H;
  int64_t a[12];
  double eps;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 12) || !get_f64(env, argv[13], &eps)) return NULL;
  const int64_t xOff = a[0], dyOff = a[1], rows = a[2], C = a[3], meanOff = a[4], varOff = a[5], scaleOff = a[6];
  const int64_t dxOff = a[7], dmeanOff = a[8], dvarOff = a[9], dscaleOff = a[10], doffOff = a[11];
  if (rows < 0 || C < 1) THROW(env, "distill_blas.bnGrad: rows must be >= 0 and C >= 1");
  const int64_t n = rows * C;
  const range_t r[] = {{dxOff, n}, {dmeanOff, C}, {dvarOff, C}, {dscaleOff, C}, {doffOff, C}, {xOff, n}, {dyOff, n}, {meanOff, C}, {varOff, C}, {scaleOff, C}};
  const char *why = dxOff < 0 || dmeanOff < 0 || dvarOff < 0 || xOff < 0 || dyOff < 0 || meanOff < 0 || varOff < 0 ? "range outside the array" : check_ranges(r, 10, 5, (int64_t)H.length);
  if (why) THROW_WHY(env, "bnGrad", why);
  const int64_t R = block_rows(C, rows), B = R * C;
  double *buf = (double *)calloc((size_t)B * 4 + (size_t)C, sizeof(double));
  if (!buf) THROW(env, "distill_blas.bnGrad: out of memory");
  double *s1 = buf, *s2 = buf + B, *mean = buf + 2 * B, *k = buf + 3 * B, *rs = buf + 4 * B;
  const float *sc = scaleOff < 0 ? NULL : H.data + scaleOff;
  for (int64_t j = 0; j < C; j++) {
    mean[j] = (double)H.data[meanOff + j];
    rs[j] = 1.0 / sqrt((double)H.data[varOff + j] + eps);
    k[j] = rs[j] * (sc ? (double)sc[j] : 1.0);
  }
  repeat_block(mean, C, R);
  repeat_block(k, C, R);
  const float *x = H.data + xOff, *dy = H.data + dyOff;
  float *dx = H.data + dxOff;
  for (int64_t i = 0; i < rows; i += R) bn_grad_row(dx + i * C, s1, s2, x + i * C, dy + i * C, mean, k, (rows - i < R ? rows - i : R) * C);
  for (int64_t b = 1; b < R; b++) /* fold the block's partial sums */
    for (int64_t j = 0; j < C; j++) {
      s1[j] += s1[b * C + j];
      s2[j] += s2[b * C + j];
    }
  for (int64_t j = 0; j < C; j++) {
    H.data[dmeanOff + j] = (float)(-k[j] * s1[j]);
    H.data[dvarOff + j] = (float)(-0.5 * rs[j] * rs[j] * k[j] * s2[j]);
    if (dscaleOff >= 0) H.data[dscaleOff + j] = (float)(rs[j] * s2[j]);
    if (doffOff >= 0) H.data[doffOff + j] = (float)s1[j];
  }
  free(buf);
  return NULL;
}

__attribute__((noinline)) static void add_row_f64(double *restrict acc, const float *restrict x, int64_t n) {
  for (int64_t j = 0; j < n; j++) acc[j] += (double)x[j];
}

/*
 * colMean(H, xOff, rows, cols, outOff): out[j] = (sum_i x[i * cols + j]) / rows, summed in double
 * and rounded once (a Mean over the leading axes of a row-major tensor); rows >= 1.
 */
static napi_value js_col_mean(napi_env env, napi_callback_info info) {
  ARGS(5, "colMean");
  fview H;
  int64_t a[4];
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 4)) return NULL;
  const int64_t xOff = a[0], rows = a[1], cols = a[2], outOff = a[3];
  if (rows < 1 || cols < 0) THROW(env, "distill_blas.colMean: rows must be >= 1 and cols >= 0");
  const range_t r[] = {{outOff, cols}, {xOff, rows * cols}};
  const char *why = outOff < 0 || xOff < 0 ? "range outside the array" : check_ranges(r, 2, 1, (int64_t)H.length);
  if (why) THROW_WHY(env, "colMean", why);
  if (cols == 0) return NULL;
  const int64_t R = block_rows(cols, rows);
  double *acc = (double *)calloc((size_t)(R * cols), sizeof(double));
  if (!acc) THROW(env, "distill_blas.colMean: out of memory");
  for (int64_t i = 0; i < rows; i += R) add_row_f64(acc, H.data + xOff + i * cols, (rows - i < R ? rows - i : R) * cols);
  for (int64_t b = 1; b < R; b++)
    for (int64_t j = 0; j < cols; j++) acc[j] += acc[b * cols + j];
  for (int64_t j = 0; j < cols; j++) H.data[outOff + j] = (float)(acc[j] / (double)rows);
  free(acc);
  return NULL;
}

/*
 * spreadRows(H, srcOff, rows, cols, divisor, outOff): out[i * cols + j] = src[j] / divisor (float32)
 * for every row i: the gradient of a Mean over the leading axes (dy spread over the reduced
 * elements). The output must not overlap the source.
 */
static napi_value js_spread_rows(napi_env env, napi_callback_info info) {
  ARGS(6, "spreadRows");
  fview H;
  int64_t a[3], outOff;
  double divisor;
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 3) || !get_f64(env, argv[4], &divisor) || !get_i64(env, argv[5], &outOff)) return NULL;
  const int64_t srcOff = a[0], rows = a[1], cols = a[2];
  if (rows < 0 || cols < 0) THROW(env, "distill_blas.spreadRows: rows and cols must be >= 0");
  const range_t r[] = {{outOff, rows * cols}, {srcOff, cols}};
  const char *why = outOff < 0 || srcOff < 0 ? "range outside the array" : check_ranges(r, 2, 1, (int64_t)H.length);
  if (why) THROW_WHY(env, "spreadRows", why);
  if (rows == 0 || cols == 0) return NULL;
  float *out = H.data + outOff;
  const float *src = H.data + srcOff;
  const float d = (float)divisor;
  for (int64_t j = 0; j < cols; j++) out[j] = src[j] / d;
  /* Double the filled part until it covers the output: few, long copies even for short rows. */
  for (int64_t done = 1; done < rows;) {
    const int64_t k = done < rows - done ? done : rows - done;
    memcpy(out + done * cols, out, (size_t)(k * cols) * sizeof(float));
    done += k;
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Elementwise float32 arithmetic with a broadcast operand: out = a op b on a rows x cols result,
 * each operand the same size (rows * cols), a row broadcast over the leading axes (cols: a [C]
 * operand over [N, H, W, C]) or one value. Plain IEEE float32 operations, so the results are those
 * of the stock kernels (no contraction: built with -ffp-contract=off).
 * ------------------------------------------------------------------------------------------- */

enum { BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2, BIN_DIV = 3 };

#define BIN_LOOPS(name, OP)                                                                                                   \
  __attribute__((noinline)) static void name##_vv(float *restrict o, const float *restrict a, const float *restrict b, int64_t n) { \
    for (int64_t j = 0; j < n; j++) o[j] = a[j] OP b[j];                                                                      \
  }                                                                                                                           \
  __attribute__((noinline)) static void name##_vs(float *restrict o, const float *restrict a, float b, int64_t n) {            \
    for (int64_t j = 0; j < n; j++) o[j] = a[j] OP b;                                                                         \
  }                                                                                                                           \
  __attribute__((noinline)) static void name##_sv(float *restrict o, float a, const float *restrict b, int64_t n) {            \
    for (int64_t j = 0; j < n; j++) o[j] = a OP b[j];                                                                         \
  }
BIN_LOOPS(bin_add, +)
BIN_LOOPS(bin_sub, -)
BIN_LOOPS(bin_mul, *)
BIN_LOOPS(bin_div, /)

typedef void (*bin_vv_fn)(float *restrict, const float *restrict, const float *restrict, int64_t);
typedef void (*bin_vs_fn)(float *restrict, const float *restrict, float, int64_t);
typedef void (*bin_sv_fn)(float *restrict, float, const float *restrict, int64_t);
static const bin_vv_fn BIN_VV[] = {bin_add_vv, bin_sub_vv, bin_mul_vv, bin_div_vv};
static const bin_vs_fn BIN_VS[] = {bin_add_vs, bin_sub_vs, bin_mul_vs, bin_div_vs};
static const bin_sv_fn BIN_SV[] = {bin_add_sv, bin_sub_sv, bin_mul_sv, bin_div_sv};

/*
 * binaryRows(H, op, aOff, aLen, bOff, bLen, rows, cols, outOff): out[i, j] = a op b (op: 0 add,
 * 1 sub, 2 mul, 3 div) for the rows x cols result at outOff, where each operand has length
 * rows * cols (elementwise), cols (the same row for every i) or 1 (one value). The inputs may alias
 * each other; the output must not overlap them.
 */
static napi_value js_binary_rows(napi_env env, napi_callback_info info) {
  ARGS(9, "binaryRows");
  fview H;
  int64_t a[8];
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 8)) return NULL;
  const int64_t op = a[0], aOff = a[1], aLen = a[2], bOff = a[3], bLen = a[4], rows = a[5], cols = a[6], outOff = a[7];
  if (op < BIN_ADD || op > BIN_DIV) THROW(env, "distill_blas.binaryRows: unknown operation");
  if (rows < 0 || cols < 0) THROW(env, "distill_blas.binaryRows: rows and cols must be >= 0");
  const int64_t n = rows * cols;
  if (!(aLen == n || aLen == cols || aLen == 1) || !(bLen == n || bLen == cols || bLen == 1))
    THROW(env, "distill_blas.binaryRows: each operand must have length rows * cols, cols or 1");
  const range_t r[] = {{outOff, n}, {aOff, aLen}, {bOff, bLen}};
  const char *why = outOff < 0 || aOff < 0 || bOff < 0 ? "range outside the array" : check_ranges(r, 3, 1, (int64_t)H.length);
  if (why) THROW_WHY(env, "binaryRows", why);
  if (n == 0) return NULL;
  float *out = H.data + outOff;
  const float *pa = H.data + aOff, *pb = H.data + bOff;
  if (aLen == 1 && bLen == 1) { /* one value (n is 1 then, or the caller wants it everywhere) */
    float v;
    BIN_VV[op](&v, pa, pb, 1);
    for (int64_t j = 0; j < n; j++) out[j] = v;
    return NULL;
  }
  /* A row operand (length cols, the same for every row) is taken a block of rows at a time, repeated
   * into scratch, so that the loops run over R * cols values (few channels, many rows). */
  const int aRow = aLen != n && aLen != 1, bRow = bLen != n && bLen != 1;
  const int64_t R = aRow || bRow ? block_rows(cols, rows) : rows;
  float *rep = NULL;
  if (aRow || bRow) {
    rep = (float *)malloc((size_t)(R * cols) * sizeof(float));
    if (!rep) THROW(env, "distill_blas.binaryRows: out of memory");
    for (int64_t k = 0; k < R; k++) memcpy(rep + k * cols, aRow ? pa : pb, (size_t)cols * sizeof(float));
  }
  for (int64_t i = 0; i < rows; i += R) {
    const int64_t m = (rows - i < R ? rows - i : R) * cols;
    const float *x = aRow ? rep : pa + (aLen == n ? i * cols : 0);
    const float *y = bRow ? rep : pb + (bLen == n ? i * cols : 0);
    if (aLen == 1) BIN_SV[op](out + i * cols, pa[0], y, m);
    else if (bLen == 1) BIN_VS[op](out + i * cols, x, pb[0], m);
    else BIN_VV[op](out + i * cols, x, y, m);
  }
  free(rep);
  return NULL;
}

__attribute__((noinline)) static void square_copy(float *restrict out, const float *restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * x[i];
}
__attribute__((noinline)) static void square_grad(float *restrict out, const float *restrict dy, const float *restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = dy[i] * (x[i] * 2.0f);
}

/*
 * square(H, xOff, n, outOff, dyOff): without dy (dyOff < 0) out = x * x (tfjs's Square); with it
 * out = dy * (x * 2), the gradient of Square (tfjs's `mul(dy, mul(x, 2))` in one pass). The output
 * must not overlap the inputs.
 */
static napi_value js_square(napi_env env, napi_callback_info info) {
  ARGS(5, "square");
  fview H;
  int64_t a[4];
  if (!get_f32(env, argv[0], &H, 0, "H") || !get_i64s(env, argv + 1, a, 4)) return NULL;
  const int64_t xOff = a[0], n = a[1], outOff = a[2], dyOff = a[3];
  if (n < 0) THROW(env, "distill_blas.square: n must be >= 0");
  const range_t r[] = {{outOff, n}, {xOff, n}, {dyOff, n}};
  const char *why = outOff < 0 || xOff < 0 ? "range outside the array" : check_ranges(r, 3, 1, (int64_t)H.length);
  if (why) THROW_WHY(env, "square", why);
  if (dyOff < 0) square_copy(H.data + outOff, H.data + xOff, n);
  else square_grad(H.data + outOff, H.data + dyOff, H.data + xOff, n);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, js_sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"biasAct", NULL, js_bias_act, NULL, NULL, NULL, napi_default, NULL},
      {"momentum", NULL, js_momentum, NULL, NULL, NULL, napi_default, NULL},
      {"adam", NULL, js_adam, NULL, NULL, NULL, napi_default, NULL},
      {"sgdStep", NULL, js_sgd_step, NULL, NULL, NULL, napi_default, NULL},
      {"maxNormCols", NULL, js_max_norm_cols, NULL, NULL, NULL, napi_default, NULL},
      {"colSum", NULL, js_col_sum, NULL, NULL, NULL, napi_default, NULL},
      {"reluGrad", NULL, js_relu_grad, NULL, NULL, NULL, napi_default, NULL},
      {"relu", NULL, js_relu, NULL, NULL, NULL, napi_default, NULL},
      {"addRows", NULL, js_add_rows, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxXent", NULL, js_softmax_xent, NULL, NULL, NULL, napi_default, NULL},
      {"argmaxHits", NULL, js_argmax_hits, NULL, NULL, NULL, napi_default, NULL},
      {"conv2d", NULL, js_conv2d, NULL, NULL, NULL, napi_default, NULL},
      {"conv2dBackpropInput", NULL, js_conv2d_backprop_input, NULL, NULL, NULL, napi_default, NULL},
      {"conv2dBackpropFilter", NULL, js_conv2d_backprop_filter, NULL, NULL, NULL, napi_default, NULL},
      {"maxPool", NULL, js_max_pool, NULL, NULL, NULL, napi_default, NULL},
      {"maxPoolGrad", NULL, js_max_pool_grad, NULL, NULL, NULL, napi_default, NULL},
      {"bnForward", NULL, js_bn_forward, NULL, NULL, NULL, napi_default, NULL},
      {"bnGrad", NULL, js_bn_grad, NULL, NULL, NULL, napi_default, NULL},
      {"colMean", NULL, js_col_mean, NULL, NULL, NULL, napi_default, NULL},
      {"spreadRows", NULL, js_spread_rows, NULL, NULL, NULL, napi_default, NULL},
      {"binaryRows", NULL, js_binary_rows, NULL, NULL, NULL, napi_default, NULL},
      {"square", NULL, js_square, NULL, NULL, NULL, napi_default, NULL},
      {"adviseHugePages", NULL, js_advise_huge_pages, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"getThreads", NULL, js_get_threads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, js_config, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
