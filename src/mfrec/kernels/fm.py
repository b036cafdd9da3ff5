"""Gibbs-sampling kernels of `BayesianFM`: a factorization machine over a user-side and an item-side block.

Every rating ``n`` of user ``u`` and item ``i`` has the feature vector ``[B_U[u], B_I[i]]``: a row
of the user-side block (user id, the user's rated-item set scaled by ``1/sqrt|N(u)|``, user
attributes) next to a row of the item-side block (item id, rater set, item attributes). The FM

    y = w0 + sum_l w_l x_l + sum_{l<m} <v_l, v_m> x_l x_m

is then, per factor dimension ``f`` with ``qU_f(u) = sum_l B_U[u, l] v_lf`` (``qI`` likewise),
``qU_f(u) qI_f(i) + 0.5 (qU_f(u)^2 - sum_l B_U[u, l]^2 v_lf^2) + (the same for i)``: every pair
of distinct features, across the blocks and within each (exact, no approximation).

Each parameter ``theta`` enters the prediction linearly, ``y = g + theta h``, so its conditional
posterior is normal with precision ``lam + alpha sum_n h_n^2`` (Rendle 2013, "Scaling
factorization machines to relational data"). For ``v_lf`` of a user-side feature, ``h_n =
B_U[u, l] (c_u + qI_f(i_n))`` with ``c_u = qU_f(u) - B_U[u, l] v_lf``: the sums over a user's
ratings need only four per-user aggregates of the residuals ``e`` and of ``qI_f`` (``side_aggregates``),
so one sweep costs O(nnz(B) k + N k), never materializing the N x (nnz per row) design matrix.
Standard-normal noise comes from the caller (the same draws on any thread count).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mfrec.kernels.compile import KERNEL_OPTIONS

_OPTS = dict(KERNEL_OPTIONS, fastmath=False)  # as written for BayesianFM: no fastmath


@njit(inline="always", **_OPTS)
def side_aggregates(ent_indptr, ent_pos, other_idx, q_other, e, S1, S2, E0, E1):
    """Per entity ``a`` (user or item) over its ratings ``n``: ``S1 = sum q_other[other(n)]``,
    ``S2 = sum q_other^2``, ``E0 = sum e_n``, ``E1 = sum e_n q_other``."""
    for a in range(ent_indptr.shape[0] - 1):
        s1 = 0.0
        s2 = 0.0
        e0 = 0.0
        e1 = 0.0
        for p in range(ent_indptr[a], ent_indptr[a + 1]):
            n = ent_pos[p]
            q = q_other[other_idx[n]]
            s1 += q
            s2 += q * q
            e0 += e[n]
            e1 += e[n] * q
        S1[a] = s1
        S2[a] = s2
        E0[a] = e0
        E1[a] = e1


@njit(inline="always", **_OPTS)
def sample_side_factor(f, colptr, colrows, colvals, group, V, mu, lam, alpha, counts, S1, S2, E0, E1, q, dsq, noise):
    """Draw ``V[l, f]`` (dimension ``f`` of every feature of one side) in feature order.

    ``mu[g, f]``/``lam[g, f]``: prior mean and precision per group; ``q``: this side's
    ``q_f`` per entity, ``E0``/``E1`` the residual aggregates, both kept current in place;
    ``dsq`` accumulates ``sum_l B^2 (v_new^2 - v_old^2)`` per entity. Features without data
    are set to 0."""
    for l in range(colptr.shape[0] - 1):
        start, stop = colptr[l], colptr[l + 1]
        if start == stop:
            V[l, f] = 0.0
            continue
        vl = V[l, f]
        hh = 0.0
        he = 0.0
        for p in range(start, stop):
            a = colrows[p]
            b = colvals[p]
            c = q[a] - b * vl
            hh += b * b * (counts[a] * c * c + 2.0 * c * S1[a] + S2[a])
            he += b * (c * E0[a] + E1[a])
        g = group[l]
        prec = lam[g, f] + alpha * hh
        mean = (alpha * (he + vl * hh) + lam[g, f] * mu[g, f]) / prec
        new = mean + noise[l] / np.sqrt(prec)
        d = new - vl
        for p in range(start, stop):
            a = colrows[p]
            b = colvals[p]
            c = q[a] - b * vl
            E0[a] -= d * b * (counts[a] * c + S1[a])
            E1[a] -= d * b * (c * S1[a] + S2[a])
            q[a] += d * b
            dsq[a] += b * b * (new * new - vl * vl)
        V[l, f] = new


@njit(inline="always", **_OPTS)
def update_residual_factor(ent_of, other_idx, q_other, q_old, q_new, dsq, e):
    """``e_n`` after one side's dimension ``f`` moved from ``q_old`` to ``q_new``."""
    for n in range(e.shape[0]):
        a = ent_of[n]
        dq = q_new[a] - q_old[a]
        e[n] -= dq * q_other[other_idx[n]] + 0.5 * (q_new[a] * q_new[a] - q_old[a] * q_old[a] - dsq[a])


@njit(**_OPTS)
def residual_sums(ent_indptr, ent_pos, e, E0):
    """``E0[a] = sum of e_n`` over the ratings of entity ``a``."""
    for a in range(ent_indptr.shape[0] - 1):
        s = 0.0
        for p in range(ent_indptr[a], ent_indptr[a + 1]):
            s += e[ent_pos[p]]
        E0[a] = s


@njit(**_OPTS)
def sample_side_linear(colptr, colrows, colvals, group, w, mu, lam, alpha, counts, E0, lin, noise):
    """Draw the linear weights ``w`` of one side (``h_n = B[a, l]``); ``E0``/``lin`` kept current."""
    for l in range(colptr.shape[0] - 1):
        start, stop = colptr[l], colptr[l + 1]
        if start == stop:
            w[l] = 0.0
            continue
        hh = 0.0
        he = 0.0
        for p in range(start, stop):
            a = colrows[p]
            b = colvals[p]
            hh += b * b * counts[a]
            he += b * E0[a]
        g = group[l]
        prec = lam[g] + alpha * hh
        mean = (alpha * (he + w[l] * hh) + lam[g] * mu[g]) / prec
        new = mean + noise[l] / np.sqrt(prec)
        d = new - w[l]
        for p in range(start, stop):
            a = colrows[p]
            b = colvals[p]
            E0[a] -= d * b * counts[a]
            lin[a] += d * b
        w[l] = new


@njit(**_OPTS)
def update_residual_linear(ent_of, lin_old, lin_new, e):
    for n in range(e.shape[0]):
        a = ent_of[n]
        e[n] -= lin_new[a] - lin_old[a]


@njit(**_OPTS)
def side_state(indptr, indices, data, V, w, q, bias):
    """Per entity from its block row: ``q = sum_l B v_l`` and the side's bias ``sum_l B w_l +
    0.5 sum_f (q_f^2 - sum_l B^2 v_lf^2)`` (its linear terms and its within-block pairs)."""
    k = V.shape[1]
    qa = np.empty(k)
    sq = np.empty(k)
    for a in range(indptr.shape[0] - 1):
        for f in range(k):
            qa[f] = 0.0
            sq[f] = 0.0
        lin = 0.0
        for p in range(indptr[a], indptr[a + 1]):
            l = indices[p]
            b = data[p]
            lin += b * w[l]
            for f in range(k):
                x = b * V[l, f]
                qa[f] += x
                sq[f] += x * x
        s = 0.0
        for f in range(k):
            q[a, f] = qa[f]
            s += qa[f] * qa[f] - sq[f]
        bias[a] = lin + 0.5 * s


@njit(**_OPTS)
def residuals(users, items, y, w0, bias_u, bias_i, qU, qI, e):
    """``e = y - (w0 + bias_u + bias_i + qU . qI)``; returns the sum of squares."""
    k = qU.shape[1]
    sse = 0.0  # summed in rating order, as an array's .sum() (which would compile NumPy's reduction too)
    for r in range(y.shape[0]):
        u = users[r]
        i = items[r]
        s = w0 + bias_u[u] + bias_i[i]
        for f in range(k):
            s += qU[u, f] * qI[i, f]
        e[r] = y[r] - s
        sse += e[r] * e[r]
    return sse


@njit(**_OPTS)
def factor_sweep(u_colptr, u_colrows, u_colvals, u_group, VU, mu_vU, lam_vU, u_counts, u_indptr, u_pos, users,
                 i_colptr, i_colrows, i_colvals, i_group, VI, mu_vI, lam_vI, i_counts, i_indptr, i_pos, items,
                 alpha, qU, qI, e, noiseU, noiseI):
    """One sweep over the factors: for each dimension ``f``, the user side's features, then the
    item side's (``noiseU``: k x user-side features standard normals, ``noiseI`` likewise), each
    given the other side: its aggregates, the sequential draws, then the residuals.

    Compile cost on an empty cache (issue 18, section 4), the same values either way:
    - The ``q_f`` columns of both sides (gathered per rating) are copied into contiguous arrays
      by loops; ``V`` and the priors are read in place (once per feature).
      ``np.ascontiguousarray(M[:, f])`` and ``M[:, f] = v`` compiled NumPy's strided-copy and
      broadcasting implementations (with their error-message string formatting), ~2 s; reading
      ``q`` in place instead was 6% slower warm.
    - One body for both sides (the side's arrays picked per pass) and its three steps
      ``inline="always"`` (one call site each): Numba links a called kernel's code into its
      caller and optimizes it again there, so a per-side helper and separate steps compiled
      their code twice (~0.4 s)."""
    for f in range(VU.shape[1]):
        for side in range(2):
            if side == 0:
                colptr, colrows, colvals, group = u_colptr, u_colrows, u_colvals, u_group
                V, mu_v, lam_v = VU, mu_vU, lam_vU
                counts, ent_indptr, ent_pos, ent_of, other_of = u_counts, u_indptr, u_pos, users, items
                q_self, q_other, noise = qU, qI, noiseU[f]
            else:
                colptr, colrows, colvals, group = i_colptr, i_colrows, i_colvals, i_group
                V, mu_v, lam_v = VI, mu_vI, lam_vI
                counts, ent_indptr, ent_pos, ent_of, other_of = i_counts, i_indptr, i_pos, items, users
                q_self, q_other, noise = qI, qU, noiseI[f]
            n_ent = counts.shape[0]
            qo = np.empty(q_other.shape[0])
            for b in range(q_other.shape[0]):
                qo[b] = q_other[b, f]
            S1 = np.empty(n_ent)
            S2 = np.empty(n_ent)
            E0 = np.empty(n_ent)
            E1 = np.empty(n_ent)
            side_aggregates(ent_indptr, ent_pos, other_of, qo, e, S1, S2, E0, E1)
            q_old = np.empty(n_ent)
            q = np.empty(n_ent)
            dsq = np.empty(n_ent)
            for a in range(n_ent):
                q_old[a] = q_self[a, f]
                q[a] = q_old[a]
                dsq[a] = 0.0
            sample_side_factor(f, colptr, colrows, colvals, group, V, mu_v, lam_v, alpha, counts, S1, S2, E0, E1, q,
                               dsq, noise)
            update_residual_factor(ent_of, other_of, qo, q_old, q, dsq, e)
            for a in range(n_ent):
                q_self[a, f] = q[a]
