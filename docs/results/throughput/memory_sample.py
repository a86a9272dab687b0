"""Peak summed RSS and PSS of every Python process on the machine while one process lives.

Produced the whole-run memory figures of docs/throughput.md (run with nothing else on the
machine, so the Python processes are the run's: main process, env workers, forkserver,
resource tracker):

    python train.py total_env_steps=200000 eval.every=1 eval.final=false run_dir=/tmp/memrun progress=false &
    python docs/results/throughput/memory_sample.py $(pgrep -f "train.py total_env_steps=200000" | head -1) /tmp/memsample.log

Writes one line per second and, when the process ends, the peak (by PSS) as its last line.
"""
import os, re, sys, time
root = int(sys.argv[1]); out = open(sys.argv[2], "w")
def procs():
    pids = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                cmd = open(f'/proc/{p}/cmdline','rb').read().replace(b'\0', b' ').decode()
            except Exception: continue
            if 'python' in cmd and 'memsample' not in cmd: pids.append((int(p), cmd[:80]))
    return pids
best = (0, 0)
while os.path.exists(f'/proc/{root}'):
    tot_rss = tot_pss = 0; n = 0
    for pid, cmd in procs():
        try: s = open(f'/proc/{pid}/smaps_rollup').read()
        except Exception: continue
        tot_rss += int(re.search(r'^Rss:\s+(\d+)', s, re.M).group(1)); tot_pss += int(re.search(r'^Pss:\s+(\d+)', s, re.M).group(1)); n += 1
    if tot_pss > best[1]: best = (tot_rss, tot_pss, n)
    print(f"{time.time():.0f} procs {n} rss {tot_rss/1024:.0f} MB pss {tot_pss/1024:.0f} MB", file=out, flush=True)
    time.sleep(1)
print("peak by pss: rss %.0f MB pss %.0f MB procs %d" % (best[0]/1024, best[1]/1024, best[2]), file=out, flush=True)
