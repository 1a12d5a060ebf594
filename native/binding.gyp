{
  "variables": {
    "gemm%": "openblas"
  },
  "targets": [
    {
      "target_name": "distill_blas",
      "sources": ["src/addon.c"],
      "cflags": ["-O3", "-march=native", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["gemm=='own'", {
          "sources": ["src/gemm.c"],
          "defines": ["DISTILL_OWN_GEMM"],
          "libraries": ["-lpthread", "-lm"]
        }, {
          "include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/openblas"],
          "libraries": ["-lopenblas", "-lm"]
        }]
      ]
    }
  ]
}
