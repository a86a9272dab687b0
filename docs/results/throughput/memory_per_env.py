"""RSS of one process as it imports the libraries and builds one env of each ML10-train class.

    PYTHONPATH=. python docs/results/throughput/memory_per_env.py

Produced the per-library and per-env memory figures of docs/throughput.md ("Memory").
"""
import os, re
def rss():
    s=open('/proc/self/status').read(); return int(re.search(r'VmRSS:\s+(\d+)',s).group(1))//1024
print("python", rss())
import numpy, scipy.spatial.transform; print("numpy+scipy", rss())
import torch; print("torch", rss())
import metaworld; print("metaworld", rss())
from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.envs.metaworld_fast import fast_class
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
import meta_rl.rollout, meta_rl.models; print("meta_rl", rss())
names=["reach-v3","push-v3","pick-place-v3","door-open-v3","drawer-close-v3","button-press-topdown-v3","peg-insert-side-v3","window-open-v3","sweep-v3","basketball-v3"]
envs=[]
for n in names:
    envs.append(fast_class(ALL_V3_ENVIRONMENTS[n])(reward_function_version="v2")); print(n, rss())
