{
  "targets": [
    {
      "target_name": "distill_blas",
      "sources": ["src/addon.c"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lm"],
      "cflags": ["-O3", "-march=native", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
