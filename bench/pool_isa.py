"""Pooling fast paths: the AVX2 copy against the AVX-512 copy of pool_kernel.inc on the same
inputs, interleaved, 1 thread, medians of 15 (needs an AVX-512 CPU).

    PYTHONPATH=python python bench/pool_isa.py
"""

import statistics
import time

import numpy as np

import convforge as cf
from convforge import _core

cf.set_num_threads(1)
rng=np.random.default_rng(0)
cases=[("max 3x3/2 64@56",(8,64,56,56),"max",3,2,1),("max 3x3/1 32@32",(8,32,32,32),"max",3,1,1),("avg 3x3/1 32@32",(8,32,32,32),"avg",3,1,1),("avg 5x5/1 16@64",(4,16,64,64),"avg",5,1,2)]
for name,shape,mode,k,s,p in cases:
    x=rng.standard_normal(shape).astype(np.float32)
    f=(lambda: cf.F.max_pool2d(x,k,s,p)) if mode=="max" else (lambda: cf.F.avg_pool2d(x,k,s,p))
    t={"avx2":[], "avx512":[]}
    for isa in ("avx2","avx512"): _core.set_isa(isa); f(); f()
    for r in range(15):
        for isa in (("avx2","avx512") if r%2 else ("avx512","avx2")):
            _core.set_isa(isa); t0=time.perf_counter(); f(); t[isa].append(time.perf_counter()-t0)
    _core.set_isa("avx512")
    a,b=statistics.median(t["avx2"])*1e3, statistics.median(t["avx512"])*1e3
    print(f"{name:20s} avx2 {a:.3f} ms  avx512 {b:.3f} ms  ratio {a/b:.2f}")
