"""`HubModelMixin`: `PyTorchModelHubMixin` that loads local checkpoint folders quietly.

huggingface_hub's mixin prints "Loading weights from local directory" with a bare `print` on every
local load; our commands load a model several times (adapt: three), so that line was noise on
stdout, where the commands print their results.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import PyTorchModelHubMixin, constants


class HubModelMixin(PyTorchModelHubMixin):
    """Loads a local folder's `model.safetensors` the way the mixin does, without the print; Hub repo
    ids go through the mixin unchanged."""

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", strict: bool = False,
                         **kwargs: Any) -> Any:
        if not os.path.isdir(model_id):
            return super()._from_pretrained(model_id=model_id, map_location=map_location, strict=strict, **kwargs)
        hub_arguments = ("revision", "cache_dir", "force_download", "local_files_only", "token")
        model = cls(**{key: value for key, value in kwargs.items() if key not in hub_arguments})
        weights = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        return cls._load_as_safetensor(model, weights, map_location, strict)
