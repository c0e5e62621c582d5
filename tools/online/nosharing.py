"""One pod per node: what the whole trace costs when no two GPU pods share a
node (no stranding, so no eviction is ever needed), with each GPU pod on
the cheapest catalog type that holds it (its GPU model, CPU and memory
after an approximation of Karpenter's kube-reserved and eviction overheads)
for its whole lifetime. Launch and registration time are not counted, so
it is a floor for that policy.

    python3 tools/online/nosharing.py ../shared/traces/alibaba-v2023-openb_pod_list_default.csv [END_SECONDS]
"""
import csv,os,sys
cat=[r for r in csv.DictReader(open(os.environ.get('CATALOG') or os.path.join(os.path.dirname(os.path.abspath(__file__)),'..','..','pkg','catalog','data','aws-accelerated-instances.csv'))) if r['gpu_manufacturer']=='nvidia' and r['arch']=='amd64' and r['price_ondemand_us_east_1']]
def alloc(r):
    v=int(r['vcpu']);mem=int(r['memory_mib']);mp=int(r['max_pods'])
    # karpenter kube-reserved cpu (millicores)
    c=0
    for i in range(v):
        c+= 60 if i==0 else 10 if i==1 else 5 if i<4 else 2.5
    cpu=v*1000-c-100  # minus ~100m daemonsets
    m=mem*0.925 - (11*mp+255) - 100 - 200
    return cpu,m
gmap={'T4':['t4'],'V100M16':['v100'],'V100M32':['v100'],'P100':['v100'],'A10':['a10g']}
types=[(float(r['price_ondemand_us_east_1']),r['instance_type'],int(r['gpu_count']),r['gpu_name'],int(r['gpu_memory_mib_per_gpu']),*alloc(r)) for r in cat]
types.sort()
f=sys.argv[1]; end=float(sys.argv[2]) if len(sys.argv)>2 else 1e18
tot=0;gh=0;n=0;maxt=0
for p in csv.DictReader(open(f)):
    g=int(p['num_gpu'])
    if g==0: continue
    cpu=int(p['cpu_milli']);mem=int(p['memory_mib']);spec=p['gpu_spec']
    ok=None
    for t in types:
        price,name,gc,gn,gm,ac,am=t
        if gc<g or ac<cpu or am<mem: continue
        if spec:
            allowed=None
            for s in spec.split('|'):
                if s in gmap:
                    if gn in gmap[s] and (s!='V100M32' or gm>=32768): allowed=True
                else: allowed=True
            if not allowed: continue
        ok=t;break
    if ok is None: continue
    c=float(p['creation_time']);d=float(p['deletion_time'] or 0)
    if not d: continue
    c=max(c,0);d=min(d,end)
    if d<=c: continue
    h=(d-c)/3600
    tot+=ok[0]*h;gh+=ok[2]*h;n+=1
print('pods',n,'cost',round(tot,2),'gpuh paid',round(gh,1))
