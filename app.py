"""Hugging Face Space entry point: `python app.py` serves the dck-talking web demo.

The model loads once, here: `DCK_CHECKPOINT` (a checkpoint folder or Hub repo id) when set, else
the default model bundled with the package; the page says which.
"""

from dck_talking.webapp import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)
