"""Reference log-probs, computed once before training and cached on disk, so training holds one model.

The reference is the frozen starting model scored with the same masks as the policy. The cache key hashes
the model's identity (path, config, weight-file sizes and sampled bytes), the tokenized data (ids and masks)
and the numeric setting of the forward pass; any change gives a new file. Under ``torchrun``/``accelerate``
each process scores its own share of the pairs and the shares are merged, so no process waits on another's
full pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from iterpref.train.data import PairCollator
from iterpref.train.scoring import score_batch

CACHE_VERSION = 1
_SAMPLE = 1 << 20  # bytes read from each end of a weight file for the fingerprint


def model_fingerprint(model_dir: str | Path) -> str:
    """Hash of a model folder: its config plus, per weight file, name, size and the first/last MiB."""
    model_dir = Path(model_dir).resolve()
    h = hashlib.sha256(str(model_dir).encode())
    config = model_dir / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    weights = sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
    for path in weights:
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as handle:
            h.update(handle.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                handle.seek(-_SAMPLE, os.SEEK_END)
                h.update(handle.read(_SAMPLE))
    return h.hexdigest()


def data_fingerprint(examples: list[dict]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex["prompt_ids"], ex["chosen_ids"], ex["rejected_ids"], ex["rejected_mask"]]).encode())
    return h.hexdigest()


def cache_key(model_dir: str | Path, examples: list[dict], setting: str) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{setting}|".encode())
    h.update(model_fingerprint(model_dir).encode())
    h.update(data_fingerprint(examples).encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def compute_reference_logps(model, examples: list[dict], collator: PairCollator, batch_size: int = 4,
                            autocast_dtype: Optional[torch.dtype] = None, progress: bool = True) -> torch.Tensor:
    """Score ``examples`` with ``model`` in eval mode; returns ``(N, 2)`` float32 [chosen, masked rejected] sums."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.empty((len(examples), 2), dtype=torch.float32)
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext())
    starts = range(0, len(examples), batch_size)
    for start in tqdm(starts, desc="reference log-probs", unit="batch", disable=not progress):
        chunk = examples[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collator(chunk).items()}
        with autocast:
            scores = score_batch(model, batch)
        out[start : start + len(chunk), 0] = scores["chosen_logps"].float().cpu()
        out[start : start + len(chunk), 1] = scores["rejected_logps"].float().cpu()
    model.train(was_training)
    return out


def reference_logps(model, model_dir: str | Path, examples: list[dict], collator: PairCollator, cache_dir: Path,
                    setting: str, batch_size: int = 4, autocast_dtype: Optional[torch.dtype] = None,
                    rank: int = 0, world_size: int = 1, wait_s: float = 6 * 3600) -> tuple[torch.Tensor, Path, bool]:
    """Load cached reference sums for (model, data, setting) or compute and cache them.

    Returns ``(logps (N, 2), cache file, hit)``. With ``world_size > 1`` every rank scores indices
    ``rank::world_size``, writes its share next to the cache file and waits (on the files, before any
    process group exists) for the others' shares; rank 0 writes the merged file. Call
    :func:`remove_shares` once every rank has returned.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(model_dir, examples, setting)
    path = cache_dir / f"ref-{key}.pt"
    if path.is_file():
        return torch.load(path), path, True
    share = list(range(rank, len(examples), world_size))
    logps = compute_reference_logps(model, [examples[i] for i in share], collator, batch_size, autocast_dtype,
                                    progress=rank == 0)
    if world_size == 1:
        _atomic_save(logps, path)
        return logps, path, False
    _atomic_save({"index": torch.tensor(share, dtype=torch.long), "logps": logps}, _share_path(path, rank, world_size))
    merged = torch.empty((len(examples), 2), dtype=torch.float32)
    for r in range(world_size):
        piece = torch.load(_wait_for(_share_path(path, r, world_size), wait_s))
        merged[piece["index"]] = piece["logps"]
    if rank == 0:
        _atomic_save(merged, path)
    return merged, path, False


def remove_shares(path: Path, world_size: int) -> None:
    for r in range(world_size):
        _share_path(path, r, world_size).unlink(missing_ok=True)


def _share_path(path: Path, rank: int, world_size: int) -> Path:
    return path.with_name(f"{path.stem}.share{rank}of{world_size}.pt")


def _atomic_save(obj, path: Path) -> None:
    # Write then rename, so a reader (another rank, a later run) never sees a half-written file.
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    tmp.replace(path)


def _wait_for(path: Path, wait_s: float) -> Path:
    deadline = time.monotonic() + wait_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {wait_s:.0f}s for {path} from another process; did it fail?")
        time.sleep(0.2)
    return path
