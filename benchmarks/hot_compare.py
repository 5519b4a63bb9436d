"""Before/after side by side: each run in a fresh child, alternating, with the bare loop."""
import json, os, subprocess, sys, statistics
CHILD = r'''
import sys, json
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import harness, sqs_consumer
assert sqs_consumer.__file__.startswith(sys.argv[1]), sqs_consumer.__file__
what, n = sys.argv[2], int(sys.argv[3])
harness.warm_up()
sqs, url = harness.new_queue(); harness.fill(sqs, url, n)
if what == "bare":
    r = harness.bare("async", sqs, url, workers=1, messages=n, work=0, inline=True)
else:
    st, sty = what.split("-")
    r = harness.ours(sqs, url, strategy=st, style=sty, concurrency=100, messages=n, work=0)
print(json.dumps({"msgs_per_s": r["msgs_per_s"], "cpu": r["cpu_us_per_msg"]}))
'''
trees = {"before": "/tmp/hot-before", "after": "/work/wt-hot"}
cases = sys.argv[1].split(",")
n = int(sys.argv[2]); reps = int(sys.argv[3])
res = {}
print("load before:", open("/proc/loadavg").read().strip())
for rep in range(reps):
    for case in cases:
        for label, tree in trees.items():
            if case == "bare" and label == "before":
                continue
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run([sys.executable, "-c", CHILD, tree, case, str(n)], env=env, capture_output=True, text=True, cwd=tree)
            if out.returncode:
                print(out.stderr[-2000:]); sys.exit(1)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            res.setdefault((case, label), []).append(r)
print("load after:", open("/proc/loadavg").read().strip())
bare = statistics.median(r["msgs_per_s"] for r in res[("bare", "after")])
print(f"bare: {bare:,.0f} msgs/s, {statistics.median(r['cpu'] for r in res[('bare','after')]):.1f} us/msg")
for case in cases:
    if case == "bare": continue
    row = []
    for label in ("before", "after"):
        m = statistics.median(r["msgs_per_s"] for r in res[(case, label)])
        c = statistics.median(r["cpu"] for r in res[(case, label)])
        row.append(f"{label}: {m:8,.0f} msgs/s {c:6.1f} us/msg ({m/bare:.2f}x bare)")
    print(f"{case:16s}", " | ".join(row))
