"""The network-free baseline: the mouth `dck-talking visemes` hears, drawn onto the face by `synth`'s renderer.

It works on any face by construction (MediaPipe finds the lips, `MouthRig` moves them and paints the
mouth interior), so it is the bar a lip-sync network has to clear on faces it has never seen. It
behaves like a `DCKTalker` (crops and mel windows in, `TalkerOutput` out), so `evaluate`, the
pipeline and the lip measures run it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from .data.pairs import mouth_mask
from .data.render import MouthRig, lips_of
from .face import LandmarkDetector, to_uint8
from .model.unet import TalkerOutput
from .model.viseme_predictor import VisemePredictor, load_viseme_predictor


class DrawnVisemes(torch.nn.Module):
    """Crops (B, 3, S, S) in [0, 1] + mel windows -> each crop with the predicted mouth drawn on it;
    `alpha` is a soft mask around the old and the new lips. A crop where MediaPipe finds no face comes
    back unchanged."""

    def __init__(self, predictor: VisemePredictor | None = None, image_size: int = 256) -> None:
        super().__init__()
        self.predictor = predictor or load_viseme_predictor()
        self.window_lead = self.predictor.window_lead
        self.image_size = image_size

    def forward(self, frames: torch.Tensor, mels: torch.Tensor) -> TalkerOutput:
        mouth = self.predictor.mouth(mels.float()).float().cpu().numpy()  # float: the pipeline may autocast to bf16
        crops = to_uint8(frames.float())
        outputs, masks = [], []
        with LandmarkDetector(num_faces=1, video=False) as detector:  # closed here, not at interpreter exit
            faces_of = [detector.detect(crop) for crop in crops]
        for crop, faces, (openness, spread, closed) in zip(crops, faces_of, mouth):
            if not faces:
                outputs.append(crop)
                masks.append(np.zeros(crop.shape[:2], np.float32))
                continue
            landmarks = faces[0].landmarks[:, :2]
            drawn = MouthRig(landmarks, crop).draw(crop, landmarks, 0.0 if closed > 0.5 else float(openness),
                                                   float(spread) * 2 - 1)
            outputs.append(drawn.image)
            masks.append(mouth_mask(crop.shape[:2], [lips_of(landmarks), lips_of(drawn.landmarks)], crop.shape[0]))
        output = torch.from_numpy(np.stack(outputs)).permute(0, 3, 1, 2).float().div(255).to(frames.device)
        alpha = torch.from_numpy(np.stack(masks))[:, None].to(frames.device)
        return TalkerOutput(output=frames * (1 - alpha) + output * alpha, alpha=alpha, motion=output)
