#!/usr/bin/env python3
"""Verify the hash chains of a JSONL audit export, independently: verify_chain.py FILE"""
import hashlib, json, sys

heads = {}  # chain -> (records checked, seq and hash of the last one)
for n, line in enumerate(open(sys.argv[1], "rb"), 1):
    line = line.rstrip(b"\n")
    record = json.loads(line)
    chain, seq = record["chain"], record["seq"]
    hash_member = b',"hash":"%s"}' % record["hash"].encode()
    start = "0" * 64 if seq == 1 else record["prev_hash"]  # a segment may start mid-chain
    count, last_seq, last_hash = heads.get(chain, (0, seq - 1, start))
    if not line.endswith(hash_member):
        problem = "hash is not the last member"
    elif hashlib.sha256(line[: -len(hash_member)] + b"}").hexdigest() != record["hash"]:
        problem = "edited: the bytes do not match the hash"
    elif seq != last_seq + 1:
        problem = f"expected seq {last_seq + 1}: records missing, reordered or inserted"
    elif record["prev_hash"] != last_hash:
        problem = "prev_hash is not the previous record's hash: forged or reordered"
    else:
        heads[chain] = (count + 1, seq, record["hash"])
        continue
    sys.exit(f"FAILED: chain {chain} seq {seq} (line {n}): {problem}")
for chain, (count, seq, head) in sorted(heads.items()):
    print(f"{chain}: {count} records through seq {seq}, head {head}")
