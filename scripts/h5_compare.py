#!/usr/bin/env python3
"""Compares two HDF5 files dataset by dataset (bit for bit) and their root attributes (but
 command_line and wall_seconds); prints SAME or the differences. Used by compare_outputs.sh."""
import h5py, numpy as np, sys
def walk(f, prefix=""):
    out = {}
    def v(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
    f.visititems(v)
    return out
a, b = h5py.File(sys.argv[1], "r", locking=False), h5py.File(sys.argv[2], "r", locking=False)
da, db = walk(a), walk(b)
ok = set(da) == set(db)
if not ok: print("datasets differ", sorted(set(da) ^ set(db)))
for k in sorted(set(da) & set(db)):
    x, y = np.asarray(da[k]), np.asarray(db[k])
    if x.shape != y.shape or x.tobytes() != y.tobytes():
        ok = False; print("DIFF", k, x.shape, y.shape)
skip = {"command_line", "wall_seconds"}
for k in sorted(set(a.attrs) | set(b.attrs)):
    if k in skip: continue
    x, y = a.attrs.get(k), b.attrs.get(k)
    same = (x is not None and y is not None and np.array_equal(np.asarray(x), np.asarray(y))) or (isinstance(x, float) and np.isnan(x) and np.isnan(y))
    if not same: ok = False; print("ATTR", k, x, y)
print(("SAME " if ok else "DIFFERENT ") + sys.argv[1])
