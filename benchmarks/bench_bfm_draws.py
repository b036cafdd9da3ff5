"""BayesianFM draw storage, chosen on a validation carve-out of the TRAINING ratings (10%, seed 0):
fit with every kept sweep stored (max_draws=180), then score the carve-out with all sweeps, every
g-th sweep alone, and means of groups of g consecutive sweeps.

    PYTHONPATH=src MFREC_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_bfm_draws.py u1|small [seed]
"""
import json
import sys
import time

import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import mfrec
from bench_bfm import attribute_tables
which = sys.argv[1]
if which == "u1":
    ds = mfrec.load_dataset("ml-100k"); train, _ = ds.official_split("u1"); kw = dict(zip(("user_attributes", "item_attributes"), attribute_tables()))
else:
    small = mfrec.load_dataset("ml-latest-small").ratings
    train, _ = mfrec.split.random_split(small, test_size=0.2, seed=0); kw = {}
fit, val = mfrec.split.random_split(train, test_size=0.1, seed=0)
m = mfrec.BayesianFM(max_draws=180, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
t = time.time(); m.fit(fit, **kw); print("fit", time.time() - t, m.n_draws_, flush=True)
df = val.to_dataframe()
u = m.user_map_.lookup(df["user"].to_numpy()); i = m.item_map_.lookup(df["item"].to_numpy())
ok = (u >= 0) & (i >= 0); u, i, y = u[ok], i[ok], df["rating"].to_numpy()[ok]
S, k = m.n_draws_, m.factors
U = m.user_factors_.astype(np.float64).reshape(-1, S, k) * np.sqrt(S)
I = m.item_factors_.astype(np.float64).reshape(-1, S, k) * np.sqrt(S)
base = m.global_mean_ + m.user_bias_[u] + m.item_bias_[i]
D = np.einsum("nsk,nsk->ns", U[u], I[i])
lo, hi = m.rating_scale_
def rmse(p): return float(np.sqrt(np.mean((np.clip(p, lo, hi) - y) ** 2)))
out = {"all180": rmse(base + D.mean(1))}
for g in (2, 4, 8):
    out[f"thin{g}"] = rmse(base + D[:, ::g].mean(1))
    n = S // g * g
    Ug = U[:, :n].reshape(-1, n // g, g, k).mean(2); Ig = I[:, :n].reshape(-1, n // g, g, k).mean(2)
    out[f"groupmean{g}"] = rmse(base + np.einsum("nsk,nsk->ns", Ug[u], Ig[i]).mean(1))
print(which, json.dumps(out), flush=True)
