import json,sys,subprocess,psutil
d=json.loads(subprocess.run(['/work/wt-thru/.venv/bin/inlet','lake','status','--json'],capture_output=True,text=True).stdout)
tot=0;pss=0
for r in d:
    p=r.get('pid'); ps=0; n=0
    if p:
        try:
            pr=psutil.Process(p); procs=[pr]+pr.children(recursive=True); n=len(procs)
            ps=sum(x.memory_full_info().pss for x in procs)
        except Exception: pass
    print(f"{r['service']:24} {r['state']:8} rss {r['rss_bytes']/1e6:7.0f} MB  pss {ps/1e6:7.0f} MB procs {n}")
    tot+=r['rss_bytes']; pss+=ps
print(f"total rss {tot/1e6:.0f} MB  pss {pss/1e6:.0f} MB")
