"""Reference values for libcommon/metrics.c: scikit-learn's roc_auc_score
(binary and macro over multi-label columns, ties included; single-class labels
raise) and accuracy_score of the arg-max class, plus the bootstrap interval
over the splitmix64 index stream that metrics.c draws (numpy.percentile).
Writes tests/fixtures/metrics_ref.safetensors: for case i, auc{i}_score (F64
[n] or [n, L]), auc{i}_label (U8), auc{i}_want (F64 [1]; NaN when sklearn
raised), acc{i}_score, acc{i}_y (I32), acc{i}_want; boot{i}_* for intervals."""
import warnings

import numpy as np
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, roc_auc_score

import oracle_util

M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next() * n) >> 64


def auc_or_nan(y, s):
    """sklearn's AUROC, NaN where it refuses a single-class label (older
    releases raise ValueError, 1.9 warns UndefinedMetricWarning and returns
    NaN); metrics.c dies there instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        try:
            return roc_auc_score(y, s, average="macro")
        except (ValueError, UndefinedMetricWarning) as e:
            assert "one class" in str(e), e
            return float("nan")


rng = np.random.default_rng(9)
T = {}
auc_cases = []
# --- binary
auc_cases.append((rng.random(50), rng.integers(0, 2, 50)))                        # plain
auc_cases.append((np.round(rng.random(40), 1), rng.integers(0, 2, 40)))           # ties
auc_cases.append((np.full(12, 0.3), np.array([0, 1] * 6)))                        # all scores equal
auc_cases.append((np.array([0.2, 0.7]), np.array([0, 1])))                       # n = 2
auc_cases.append((np.array([0.7, 0.2]), np.array([0, 1])))                       # n = 2, inverted
auc_cases.append((np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0])))               # n = 3, a tie across classes
auc_cases.append((np.arange(10.0), np.array([0] * 5 + [1] * 5)))                 # perfect
auc_cases.append((-np.arange(10.0), np.array([0] * 5 + [1] * 5)))                # perfectly wrong
auc_cases.append((rng.integers(0, 4, 300).astype(float), rng.integers(0, 2, 300)))  # heavy ties, n = 300
auc_cases.append((rng.normal(size=7), np.array([1, 1, 1, 1, 1, 1, 0])))          # unbalanced tiny
auc_cases.append((rng.random(9), np.ones(9, dtype=int)))                         # single class: raises
auc_cases.append((rng.random(1), np.zeros(1, dtype=int)))                        # n = 1: raises
auc_cases.append((np.array([1e-300, 2e-300, 1e300, -1e300]), np.array([0, 1, 1, 0])))  # extreme values
# --- macro over labels (multi-label tables)
y = rng.integers(0, 2, (60, 5))
auc_cases.append((rng.random((60, 5)) + 0.3 * y, y))                             # 5 labels, informative
y = rng.integers(0, 2, (45, 3))
auc_cases.append((np.round(rng.random((45, 3)), 1), y))                          # ties per column
y = rng.integers(0, 2, (20, 4)); y[:, 2] = 0
auc_cases.append((rng.random((20, 4)), y))                                       # one single-class column: raises
y = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
auc_cases.append((np.full((4, 2), 0.5), y))                                      # tiny, all equal
for i, (s, y) in enumerate(auc_cases):
    T[f"auc{i}_score"] = torch.tensor(s, dtype=torch.float64)
    T[f"auc{i}_label"] = torch.tensor(y, dtype=torch.uint8)
    T[f"auc{i}_want"] = torch.tensor([auc_or_nan(y, s)], dtype=torch.float64)

acc_cases = []
acc_cases.append((rng.random((30, 3)), rng.integers(0, 3, 30)))
acc_cases.append((np.round(rng.random((25, 3)), 1), rng.integers(0, 3, 25)))     # ties: first arg-max
acc_cases.append((np.zeros((6, 3)), np.array([0, 1, 2, 0, 1, 2])))             # all equal: class 0
acc_cases.append((np.array([[0.1, 0.9]]), np.array([1])))                       # n = 1
acc_cases.append((rng.normal(size=(200, 4)), rng.integers(0, 4, 200)))
for i, (s, y) in enumerate(acc_cases):
    T[f"acc{i}_score"] = torch.tensor(s, dtype=torch.float64)
    T[f"acc{i}_y"] = torch.tensor(y, dtype=torch.int32)
    T[f"acc{i}_want"] = torch.tensor([accuracy_score(y, np.argmax(s, axis=1))], dtype=torch.float64)


def bootstrap(kind, s, y, n_res, seed):
    """What metrics_bootstrap does, with sklearn for each resample."""
    g = SplitMix64(seed)
    n = len(s)
    vals, skipped, draws = [], 0, 0
    while len(vals) < n_res:
        draws += 1
        idx = np.array([g.below(n) for _ in range(n)])
        if kind == "auc":
            yy = y[idx].reshape(n, -1)
            if any(len(np.unique(yy[:, l])) < 2 for l in range(yy.shape[1])):
                skipped += 1
                continue
            vals.append(roc_auc_score(y[idx], s[idx], average="macro"))
        else:
            vals.append(accuracy_score(y[idx], np.argmax(s[idx], axis=1)))
    return np.percentile(vals, 2.5), np.percentile(vals, 97.5), skipped


boot = [("auc", auc_cases[13][0], auc_cases[13][1], 200, 7),
        ("auc", auc_cases[1][0], auc_cases[1][1], 100, 3),
        ("auc", np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.5]), np.array([0, 0, 1, 1, 1, 0, 1, 0]), 300, 11),
        ("acc", acc_cases[0][0], acc_cases[0][1], 150, 5)]
for i, (kind, s, y, n_res, seed) in enumerate(boot):
    lo, hi, skipped = bootstrap(kind, s, y, n_res, seed)
    T[f"boot{i}_score"] = torch.tensor(s, dtype=torch.float64)
    T[f"boot{i}_{'label' if kind == 'auc' else 'y'}"] = torch.tensor(y, dtype=torch.uint8 if kind == "auc" else torch.int32)
    T[f"boot{i}_want"] = torch.tensor([lo, hi, skipped, n_res, seed], dtype=torch.float64)

# percentile itself
x = rng.random(37)
T["pct_x"] = torch.tensor(x, dtype=torch.float64)
T["pct_want"] = torch.tensor([np.percentile(x, q) for q in (0, 2.5, 50, 97.5, 100)], dtype=torch.float64)
# splitmix64 words for seed 1234567 (reference values of the generator itself)
g = SplitMix64(1234567)
w = [g.next() for _ in range(8)]
T["splitmix_words"] = torch.tensor([v - (1 << 64) if v >= (1 << 63) else v for v in w], dtype=torch.int64)

oracle_util.save("metrics_ref.safetensors", T, {"sklearn": __import__("sklearn").__version__})
print(f"{len(auc_cases)} AUROC cases, {len(acc_cases)} accuracy cases, {len(boot)} bootstrap cases")
