"""Training data: `prepare` (real talking videos -> clip folders), `synth` (synthetic paired videos:
one identity and head motion with several speeches), and `PairDataset` (the pair sampler).

    from dck_talking.data import PairDataset
    from dck_talking.data.prepare import prepare      # prepare(videos_dir, out_dir, size=256, workers=None)
    from dck_talking.data.synth import synth, contact_sheet

The clip folder format, shared by `prepare`, `synth` and the sampler, is described in
`dck_talking.data.store`. Importing this package loads neither mediapipe nor pocketsphinx.
"""

from .pairs import PairDataset, discover, swap_mouth
from .store import ClipWriter, is_clip, write_index

__all__ = ["ClipWriter", "PairDataset", "discover", "is_clip", "swap_mouth", "write_index"]
