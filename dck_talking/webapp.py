"""The Gradio web app (the Hugging Face Space): a face photo or video and speech (a recording, or
typed text spoken by espeak-ng) in, a lip-synced video out. A face given is shown at once with its
faces numbered, largest first; a click on one picks it.

`build_demo()` makes the Blocks UI and loads the model once, without serving anything; `launch()`
serves it. Importing this module has no side effects. API (`gradio_client`), stable names:

    from gradio_client import Client, handle_file
    video, summary = Client("http://127.0.0.1:7860/").predict(
        photo=handle_file("face.jpg"), speech=handle_file("speech.wav"), api_name="/generate")
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from . import tts
from .audio import SAMPLE_RATE, load_audio
from .errors import DCKError, InputError
from .examples import FACE, SPEECH
from .face import draw_faces
from .model import DCKTalker, load_model
from .pipeline import FacesFound, Summary, TalkingFacePipeline, find_faces
from .timeline import POLICIES
from .video import probe

MAX_SECONDS = 30.0  # longest speech lip-synced per request
MAX_TEXT = 600  # characters of typed text (about 40 s of speech)
MAX_UPLOAD_MB = 50  # per upload
MAX_PHOTO_SIDE = 1280  # larger photos are scaled down first (for the faces shown and the video made alike)
MAX_VIDEO_SIDE = 1920  # larger videos are refused
SPOKEN = "spoken.wav"  # typed text's speech, in the work folder
QUEUE_SIZE = 16  # requests waiting; more are turned away
DELETE_CACHE = (600, 3600)  # every 10 min, delete uploads and results older than an hour (and all at exit)

INTRO = ("Upload or record a **face** (a photo or a video) and **speech** (a recording, or typed text), "
         "then press **Generate**. Only the mouth area is re-drawn; everything else stays as it was. "
         "The result lasts as long as the speech.")
RESPONSIBLE_USE = ("This app makes synthetic media: a person appears to say words they never said. Use it only "
                   "with the consent of the people shown, never to deceive, and label what it makes as generated "
                   "(the videos carry a metadata tag that marks them as synthetic).")
CSS = ".dck-note { border-left: 4px solid #f59e0b; padding: 0.25rem 0.75rem; }"


def _answer_unreadable(image: gr.Image) -> gr.Image:
    """`image`, whose upload that is no image (a text file named .jpg sent through the API) is answered
    with what is wrong: Gradio's own check opens it and fails with a generic "The upstream Gradio app
    has raised an exception". Wrapped on the instance: a subclass of a Gradio component makes Gradio
    write a .pyi file beside this module."""
    preprocess = image.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            reason = "unknown format" if isinstance(err, UnidentifiedImageError) else str(err).splitlines()[0]
            raise gr.Error(f"{image.label}: not a readable image ({reason})", print_exception=False) from None

    image.preprocess = checked
    return image


def build_demo(model: DCKTalker | None = None, note: str | None = None, *, checkpoint: str | None = None,
               device: str | None = None, max_seconds: float = MAX_SECONDS, concurrency_limit: int = 1) -> gr.Blocks:
    """The Blocks UI around one `TalkingFacePipeline`. `model` and `note` (Markdown shown under the
    title) default to `load_model(checkpoint)`'s (`checkpoint`, else `$DCK_CHECKPOINT`, else the
    bundled model) and a line naming it; `max_seconds` caps the speech; `concurrency_limit` is how
    many generations run at once (the rest wait in the queue)."""
    if model is None:
        model, what = load_model(checkpoint)
        note = f"Model: {what}."
    pipe = TalkingFacePipeline(model, device=device)
    can_speak = tts.available()
    voices = tts.voices() if can_speak else [("English (America)", tts.DEFAULT_VOICE)]

    def generate(photo: str | None = None, video: str | None = None, speech: str | None = None,
                 text: str | None = None, voice: str = tts.DEFAULT_VOICE, length: str = "pingpong",
                 face_index: int = 0, show_mask: bool = False, progress: gr.Progress = gr.Progress()
                 ) -> Iterator[tuple[str, str]]:
        """Lip-sync the face of `photo` or `video` to `speech` or to `text` spoken with `voice`.
        Yields (video path, summary) once; the working folder goes after Gradio has copied the video.
        The defaults make every argument optional for `gradio_client` callers."""
        with tempfile.TemporaryDirectory(prefix="dck-talking-") as folder:
            work = Path(folder)
            # Errors name the input as the visitor knows it, not by a temporary path.
            labels = {str(photo): "Face photo", str(video): "Face video", str(speech): "Speech",
                      str(work / SPOKEN): "Spoken text"}
            try:
                face = _face(photo, video)
                audio = _speech(speech, text, voice, work, max_seconds)
                output = work / "talking-face.mp4"
                summary = pipe.generate(
                    face, audio, output, length=length, face_index=int(face_index), show_mask=show_mask,
                    photo_size=MAX_PHOTO_SIDE,
                    progress=lambda done, total: progress((done, total), desc="Lip-syncing", unit="frames"))
            except InputError as exc:
                raise gr.Error(f"{labels.get(exc.path, exc.path)}: {exc.problem}", print_exception=False) from None
            except DCKError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            yield str(output), _describe(summary)

    def show_faces(photo: str | None = None, video: str | None = None) -> tuple[Any, str, Any, list]:
        """The photo (else the video) just given with its faces numbered, a line about them, face 0
        chosen again, and their boxes (for a click on the picture); hidden when no face is given."""
        if not photo and not video:
            return gr.update(value=None, visible=False), "", gr.skip(), []
        try:
            found = find_faces(_face(photo, None) if photo else _face(None, video), photo_size=MAX_PHOTO_SIDE)
        except InputError as exc:
            raise gr.Error(f"{'Face photo' if photo else 'Face video'}: {exc.problem}", print_exception=False) from None
        preview = gr.update(value=draw_faces(found.image, found.faces), visible=True)
        return preview, _faces_note(found), 0, [list(face.box) for face in found.faces]

    def show_video_faces(photo: str | None = None, video: str | None = None) -> tuple[Any, str, Any, list]:
        """`show_faces` for a video just given (the photo it replaces may not be cleared yet)."""
        return show_faces(None if video else photo, video)

    with gr.Blocks(title="dck-talking: lip-sync a face to speech", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# dck-talking: lip-sync a face to speech\n" + INTRO)
        if note:
            gr.Markdown(note, elem_classes="dck-note")
        with gr.Row(equal_height=False):
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Face photo"):
                        photo = _answer_unreadable(gr.Image(label="Face photo", type="filepath", image_mode=None,
                                                            sources=["upload", "webcam", "clipboard"], height=300,
                                                            elem_id="face-photo"))
                    with gr.Tab("Face video"):
                        video = gr.Video(label="Face video", sources=["upload", "webcam"], height=300,
                                         elem_id="face-video")
                faces = gr.Image(label="Faces found, largest first: click one to choose it", interactive=False,
                                 visible=False, height=300, elem_id="faces")
                faces_note = gr.Markdown(elem_id="faces-note")
                boxes = gr.State([])
                face_index = gr.Number(0, precision=0, minimum=0, label="Which face", elem_id="face-index",
                                       info="0 = the largest face, 1 = the next largest, ... (as numbered above)")
                with gr.Tabs():
                    with gr.Tab("Speech"):
                        speech = gr.Audio(label="Speech", type="filepath", sources=["upload", "microphone"],
                                          elem_id="speech")
                    with gr.Tab("Text"):
                        text = gr.Textbox(label="Text to speak", lines=3, max_length=MAX_TEXT, interactive=can_speak,
                                          placeholder="Type what the face should say" if can_speak
                                          else "espeak-ng is not installed on this server")
                        voice = gr.Dropdown(voices, value=tts.DEFAULT_VOICE, label="Voice (espeak-ng)",
                                            interactive=can_speak)
                gr.Markdown(f"The last face and the last speech you give are used. Speech: at most "
                            f"{max_seconds:g} s; uploads: at most {MAX_UPLOAD_MB} MB.")
                with gr.Accordion("Options", open=False):
                    length = gr.Radio(list(POLICIES), value="pingpong", label="Video shorter than the speech",
                                      info="pingpong: play forwards and backwards; loop: start again; "
                                           "freeze: hold the last frame")
                    show_mask = gr.Checkbox(False, label="Show the attention mask side by side",
                                            info="the area the model re-draws, in white, right of the video")
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                result = gr.Video(label="Lip-synced video", interactive=False, buttons=["download"], height=420,
                                  elem_id="result")
                summary = gr.Markdown(label="Summary", elem_id="summary")
        gr.Examples([[str(FACE), None, str(SPEECH), ""]]
                    + ([[str(FACE), None, None, "Hello! I am a talking face, made by dck-talking."]]
                       if can_speak else []),
                    inputs=[photo, video, speech, text], label="Examples (click one, then Generate)")
        gr.Markdown(RESPONSIBLE_USE)

        # One face and one speech source at a time: giving one clears the other (in the other tab).
        for given, other in ((photo, video), (video, photo), (speech, text), (text, speech)):
            given.input(_clear_other, given, other, queue=False, show_progress="hidden", api_visibility="private")
        for given, show in ((photo, show_faces), (video, show_video_faces)):
            given.change(show, [photo, video], [faces, faces_note, face_index, boxes], api_visibility="private")
        faces.select(_pick_face, boxes, face_index, queue=False, show_progress="hidden", api_visibility="private")
        button.click(generate, [photo, video, speech, text, voice, length, face_index, show_mask],
                     [result, summary], api_name="generate", concurrency_limit=concurrency_limit)
    demo.queue(max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks | None = None, **options: Any) -> tuple[Any, str, str | None]:
    """Serve `demo` (default: `build_demo()`) with the app's theme, CSS and upload limit; `options`
    go to `gr.Blocks.launch` (server_name, server_port, share, prevent_thread_lock, ...)."""
    demo = demo or build_demo()
    defaults = dict(theme=gr.themes.Soft(primary_hue="indigo"), css=CSS, max_file_size=f"{MAX_UPLOAD_MB}mb")
    return demo.launch(**{**defaults, **options})


def _clear_other(value: str | None) -> Any:
    """Empty the other input when this one got a value; leave it alone when this one was cleared."""
    return None if value and value.strip() else gr.skip()


def _face(photo: str | None, video: str | None) -> Path:
    """The face file to lip-sync: a photo, or a video no larger than `MAX_VIDEO_SIDE`."""
    if photo and video:
        raise InputError("Face", "give a photo or a video, not both")
    if video:
        info = probe(video)
        if max(info.width, info.height) > MAX_VIDEO_SIDE:
            raise InputError(video, f"{info.width}x{info.height} pixels; this demo takes videos up to "
                                    f"{MAX_VIDEO_SIDE} pixels on the long side")
        return Path(video)
    if not photo:
        raise InputError("Face", "upload or record a face photo or video")
    return Path(photo)


def _faces_note(found: FacesFound) -> str:
    """One line about the faces found in what the visitor gave."""
    if not found.faces:
        return (f"**No face found in this {'video' if found.fps else 'photo'}.** Faces from about 40 pixels "
                "wide, turned at most about 45 degrees, are found.")
    where = f" in frame {found.frame} ({found.frame / found.fps:.1f} s), the first with a face" if found.fps else ""
    if len(found.faces) == 1:
        return f"One face found{where}."
    return (f"{len(found.faces)} faces found{where}, numbered from the largest: click one in the picture (or type "
            "its number under *Which face*) to lip-sync it.")


def _pick_face(boxes: list[list[float]], event: gr.SelectData) -> Any:
    """The number of the face clicked in the numbered picture (the smallest box around the click)."""
    x, y = event.index
    inside = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x0 <= x <= x1 and y0 <= y <= y1]
    if not inside:
        return gr.skip()
    return min(inside, key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))


def _speech(speech: str | None, text: str | None, voice: str, work: Path, max_seconds: float) -> Path:
    """The speech file: the recording, or `text` spoken by espeak-ng; at most `max_seconds` long."""
    text = (text or "").strip()
    if speech and text:
        raise InputError("Speech", "give a recording or text, not both")
    if text:
        if len(text) > MAX_TEXT:
            raise InputError("Text", f"{len(text)} characters; this demo speaks at most {MAX_TEXT}")
        speech = str(tts.synthesize(text, work / SPOKEN, voice))
    if not speech:
        raise InputError("Speech", "upload or record speech, or type text")
    seconds = len(load_audio(speech)) / SAMPLE_RATE
    if seconds > max_seconds:
        raise InputError(speech, f"lasts {seconds:.1f} s; this demo lip-syncs at most {max_seconds:g} s")
    return Path(speech)


def _describe(summary: Summary) -> str:
    """One line for the UI about what a generation did."""
    passed = f", {summary.passed_through} without a face passed through" if summary.passed_through else ""
    return (f"{summary.frames} frames at {summary.fps_source:g} fps, face found in {summary.faces}{passed}; "
            f"rendered in {summary.seconds:.1f} s ({summary.fps_achieved:.1f} frames/s).")
