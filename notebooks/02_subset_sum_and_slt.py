# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Subset sums in ER networks and a strong lottery ticket built in front of you
#
# Strong lottery tickets (SLTs) are subnetworks that work *without training*: only a mask is chosen.  Theorem 2.5
# of the paper shows that ER networks contain SLTs for any target once they are wide enough.  The engine is
# **Lemma 2.4**: among `n` random values `X_i ~ U[-1, 1]`, each kept with probability `p`, some subset sums to
# within `epsilon` of any `z` in `[-1, 1]` (with probability `1 - delta`) as soon as
#
# $$n \ge \frac{C_1}{\log(1/(1-p))}\log\frac{1}{\min(\delta, \varepsilon)}.$$
#
# This notebook solves subset-sum problems exactly (`ertheory.subsetsum`), measures the constant `C_1`, and builds
# an SLT for a small target (`ertheory.slt`).  `ERTOOLKIT_SMALL=1` selects quick settings.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from ertheory import bounds, slt, subsetsum

SMALL = os.environ.get("ERTOOLKIT_SMALL", "0") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## The exact solver
# Meet in the middle: the sorted subset sums of two halves, one lookup per (target, half-sum).  With an ER mask
# only the kept values may be used.  For small `n` we check the solver against brute force over all `2^n` subsets.

# %%
n, p = 16, 0.5
values = rng.uniform(-1, 1, n)
present = rng.random(n) < p
targets = np.linspace(-1, 1, 9)
res = subsetsum.best_subset_er(values, present, targets)
for t_idx, (z, err) in enumerate(zip(targets, res.errors, strict=True)):
    brute_err = subsetsum.brute_force_best_subset(values[present], z)[1]
    print(f"z = {z:+.2f}: best error {err:.2e} (brute force {brute_err:.2e}), subset {res.indices(t_idx).tolist()}")
assert np.all(res.masks <= present)  # only kept values are used

# %% [markdown]
# With more values the error falls exponentially: here the best error over 200 targets for growing `n`, dense
# and at density 0.3.

# %%
ns = np.arange(4, 25, 4)
zs = rng.uniform(-1, 1, 200)
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for p_keep in (1.0, 0.3):
    worst = []
    for k in ns:
        x = rng.uniform(-1, 1, k)
        keep = rng.random(k) < p_keep
        worst.append(subsetsum.best_subset_er(x, keep, zs).errors.max() if keep.any() else 1.0)
    ax.semilogy(ns, worst, "o-", label=f"p = {p_keep}")
ax.set_xlabel("n values")
ax.set_ylabel("worst error over 200 targets")
ax.legend()
plt.show()

# %% [markdown]
# ## Measuring the constant `C_1`
# For each `(epsilon, p)` the smallest `n` at which the kept values cover all of `[-1, 1]` to `epsilon` with
# probability `1 - delta` (here `delta = epsilon`) is found from Monte-Carlo draws of the values; the ER mask is
# integrated exactly.  A least-squares fit through the origin of `n` against `log(1/min(delta, eps)) / log(1/(1-p))`
# gives `C_1`, with a bootstrap interval.

# %%
eps = np.array([0.1, 0.05]) if SMALL else np.array([0.2, 0.1, 0.05, 0.02])
dens = np.array([0.2, 0.5]) if SMALL else np.array([0.1, 0.2, 0.3, 0.5])
scal = subsetsum.scaling_experiment(eps, eps, dens, draws=80 if SMALL else 300, k_max=40,
                                    n_boot=20 if SMALL else 100, seed=0)
fit = scal.fit
print(f"C_1 = {fit.c1:.2f}  ({fit.confidence:.0%} CI {fit.ci[0]:.2f} - {fit.ci[1]:.2f}), "
      f"relative RMS residual {fit.rel_rmse_log:.2f}")
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for j, pj in enumerate(scal.density):
    ax.plot(scal.x_log[:, j], scal.n_required[:, j], "o", label=f"p = {pj:g}")
xs = np.linspace(0, scal.x_log.max() * 1.05, 20)
ax.plot(xs, fit.c1 * xs, "k--", label=f"C_1 = {fit.c1:.2f}")
ax.set_xlabel("log(1/min(delta, eps)) / log(1/(1-p))")
ax.set_ylabel("required n")
ax.legend()
plt.show()
print("Lemma 2.4 with the fitted C_1 at p = 0.1, eps = delta = 0.01:",
      f"n >= {float(bounds.lemma_2_4(0.1, 0.01, 0.01, C=fit.c1)):.0f}")

# %% [markdown]
# ## A strong lottery ticket, built
# Target: `f_T(x) = W_2 relu(W_1 x + b_1) + b_2` with 2 inputs, 3 hidden neurons and 1 output, all entries in
# `[-1, 1]`.  Source: an ER network of depth 3 with `U[-1, 1]` weights and biases, `q_0 (d + 1)` and `q_1 (n_T1 + 1)`
# neurons, density `p` in layers 1 and 2.  The construction only *chooses* edges (subset sums), it changes no weight.

# %%
target = slt.random_target(2, 3, 1, np.random.default_rng(1))
p_er, q1 = 0.5, 60
epsilon = 0.05
source = slt.random_source(target.widths, 2 * q1, q1, (1.0, p_er, p_er), np.random.default_rng(2))
ticket = slt.construct_slt(target, source, epsilon)
n_er = sum(int(m.sum()) for m in source.er_masks)
print(f"source widths {ticket.widths}, ER edges {n_er:,}; ticket keeps {ticket.kept_weights} of them")
print(f"{ticket.problems} subset-sum problems, largest error {ticket.max_problem_error:.1e}")
print(f"rigorous sup-error bound {float(ticket.bound.max()):.4f}, measured sup error {ticket.sup_error:.4f}, "
      f"success (bound <= {epsilon}): {ticket.success}")
print("Theorem 2.5's widths with C = 1:", slt.theorem_widths(target, p_er, 0.1, epsilon))
assert ticket.success

# %% [markdown]
# Theorem 2.5's widths hold up to its unknown generic constant `C` (printed with `C = 1`); the measured `C_1` above
# suggests `C` of a few units.  The ticket against the target along a line through the unit ball:

# %%
t = np.linspace(-1, 1, 401)
line = np.stack([t, 0.5 * t], axis=1) / np.linalg.norm([1, 0.5])
got = slt.masked_forward(source, ticket.weight_masks, ticket.bias_masks, line)
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax.plot(t, target(line)[:, 0], lw=3, alpha=0.5, label="target")
ax.plot(t, got[:, 0], "k--", label="ticket inside the ER source (no training)")
ax.set_xlabel("position on the line")
ax.legend()
ax2.plot(t, got[:, 0] - target(line)[:, 0])
ax2.axhline(epsilon, color="r", ls=":")
ax2.axhline(-epsilon, color="r", ls=":")
ax2.set_title("error (dotted: +-epsilon)")
plt.show()
assert ticket.sup_error <= float(ticket.bound.max()) + 1e-12
