/* dispatch.h: run-time dispatch of a plugin's hot loops. A function marked
 * WGF_DISPATCH is compiled for AVX-512, AVX2 and the build's baseline, and
 * the loader picks the best the processor has (GCC's target_clones, checked
 * by configure as WGF_HAVE_TARGET_CLONES), so a portable build runs them as
 * fast as an -march=native one; the loops they call are inlined into each
 * clone. Contraction to fused multiply-adds (which AVX-512 brings) is off in
 * a file that includes this header, so every clone rounds as the baseline
 * does: a portable build gives the same bits on every x86-64 processor. A
 * build that already targets AVX2 or better (--enable-native) needs no
 * clones. Include "config.h" first, and this header before any code. */
#ifndef PLUGINS_DISPATCH_H
#define PLUGINS_DISPATCH_H

#if defined(WGF_HAVE_TARGET_CLONES) && !defined(__AVX2__)
#pragma GCC optimize("fp-contract=off")
#define WGF_DISPATCH __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WGF_DISPATCH
#endif

#endif
