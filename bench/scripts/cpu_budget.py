#!/usr/bin/env python3
"""Server CPU by stage, from `perf script -F comm,tid,ip,sym` output of a DWARF call-graph profile.

Each sample goes to the stage of its innermost frame that names one (a sample in the allocator
under the JSON parser counts as parsing); samples of the flusher thread are the log's write and
fdatasync. Usage: cpu_budget.py PERF_SCRIPT_OUTPUT (see cpu-budget.sh).
"""
import collections
import sys
samples=[]; cur=None
for line in open(sys.argv[1], errors='replace'):
    if not line.strip():
        if cur: samples.append(cur); cur=None
        continue
    if not line.startswith((' ','\t')):
        cur={'comm':line.split()[0],'frames':[]}
    else:
        parts=line.strip().split(None,1)
        cur['frames'].append(parts[1] if len(parts)>1 else '')
if cur: samples.append(cur)
# ordered rules: first matching frame category (searching from leaf up)
rules=[
 ('fsync/WAL write (flusher thread)', lambda s: s['comm'].startswith('ivory-flusher') or s['comm'].startswith('ivory-wal')),
 ('sled IO threads', lambda s: s['comm'].startswith('sled')),
]
stage_markers=[
 # With LTO the apply is inlined into openraft's state-machine worker: its frame is the marker.
 ('apply (state machine)', ['ivory_raft::state_machine::{impl','ShardStateMachine as openraft::storage','ivory_core::shard::Shard::apply','ivory_core::stock','ivory_core::hold','ivory_core::shard::fingerprint','ivory_core::shard::event_key','openraft::core::sm::worker']),
 ('log append (WAL or sled insert)', ['ivory_raft::wal','GroupLogStore','SledLogStore','sled::']),
 ('raft core (openraft)', ['openraft::']),
 ('parse request (JSON -> command)', ['ivory_gateway::parse','serde_json::de','ivory_core::json','write_command','json_body']),
 ('render response (JSON)', ['result_json','json_response','serde_json::ser','axum::json']),
 ('auth (bearer token)', ['ivory_gateway::auth']),
 ('routing/forwarding/coalescer', ['ivory_node::batcher','ivory_node::node','NodeBackend','ShardRing','with_retry']),
 ('metrics/tracing middleware', ['metrics','tracing','ivory_gateway::track','ivory_gateway::request_id']),
 ('HTTP (hyper/axum, sockets)', ['hyper::','axum::','tcp_','sock_','inet_','tower::']),
]
cnt=collections.Counter()
for s in samples:
    cat=None
    for name,f in rules:
        if f(s): cat=name;break
    if not cat:
        fr=s['frames']
        # innermost-first: find the first frame (from leaf) matching a stage marker, but prefer
        # outer application stages: scan from root to leaf and take the deepest ivory stage
        found=None
        for f in fr:  # leaf first
            for name,marks in stage_markers:
                if any(m in f for m in marks):
                    found=name;break
            if found: break
        cat=found or ('kernel/scheduler/other' if any('[k]' in f or 'kernel' in f for f in fr[:1]) else 'other (runtime, allocator, kernel)')
    cnt[cat]+=1
tot=sum(cnt.values())
for k,v in cnt.most_common():
    print(f"{100*v/tot:5.1f}%  {k}")
print(tot,'samples')
