import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# A DCKTalker small enough to train for a few steps in a test.
TINY = dict(image_size=64, down_channels=[4, 8, 8, 16], dck_channels=16, dck_layers=2, kernel_hidden=16)
