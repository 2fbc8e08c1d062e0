"""The `dck-talking` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import DCKError


def _bench(args: argparse.Namespace) -> None:
    from . import bench
    from .pipeline import BATCH_SIZE, default_device

    device = args.device or default_device().type
    if args.pipeline:
        preset = args.presets[0] if len(args.presets) == 1 else "compact"
        dtype = args.dtypes[0] if args.dtypes else None
        batch = args.batch_sizes[0] if args.batch_sizes else BATCH_SIZE
        rows = bench.run_pipeline(args.resolutions, args.video_seconds, preset, device, batch, dtype,
                                  close_mouth=not args.keep_mouth)
        print(bench.format_pipeline_table(rows, preset, device, batch, dtype))
        return
    dtypes = args.dtypes or bench.default_dtypes(device)
    rows = bench.run(args.presets, args.batch_sizes or list(bench.BATCH_SIZES), dtypes, device, args.seconds)
    print(bench.format_table(rows, device))


def _generate(args: argparse.Namespace) -> None:
    from .model import load_model
    from .pipeline import TalkingFacePipeline

    pipe = TalkingFacePipeline(load_model(args.checkpoint)[0], device=args.device, batch_size=args.batch_size,
                               close_mouth=not args.keep_mouth)
    summary = pipe.generate(args.face, args.audio, args.out, length=args.length, face_index=args.face_index,
                            fps=args.fps, photo_size=args.photo_size or None, progress=True)
    print(summary)


def _faces(args: argparse.Namespace) -> None:
    from .pipeline import find_faces

    found = find_faces(args.file, photo_size=args.photo_size or None)
    print(found)
    if args.out:
        from .face import draw_faces, save_picture

        save_picture(args.out, draw_faces(found.image, found.faces))
        print(f"numbered boxes: {args.out}")
    if not found.faces:
        raise DCKError(f"{args.file}: no face found" + ("" if found.fps == 0 else " in any frame"))


def _prepare(args: argparse.Namespace) -> None:
    from .data.prepare import prepare

    summary = prepare(args.videos, args.out, size=args.size, workers=args.workers, min_seconds=args.min_seconds,
                      retry_skipped=args.retry_skipped, paired=args.paired, progress=True)
    print(summary)


def _synth(args: argparse.Namespace) -> None:
    from .data.synth import VOICES, contact_sheet, openness_check, synth

    summary = synth(args.faces, args.out, speech=args.speech, text=args.text, groups=args.groups,
                    speeches_per_group=args.speeches_per_group, seconds=args.seconds, size=args.size,
                    workers=args.workers, seed=args.seed, voices=args.voices or VOICES, motion=args.motion,
                    progress=True)
    print(summary)
    if args.contact_sheet:
        print(f"contact sheet: {contact_sheet(args.out, args.contact_sheet)}")
    if args.check:
        check = openness_check(args.out)
        print(f"lip gap measured by MediaPipe vs viseme openness over {check['frames']} frames of {check['clips']} "
              f"clips: Pearson r {check['pearson_r']:.3f}; gap at bilabials {check['gap_at_bilabials_mean']:.3f} "
              f"(95th percentile {check['gap_at_bilabials_p95']:.3f}, {check['bilabial_frames']} frames), "
              f"gap when open (openness > 0.4) {check['gap_when_open_mean']:.3f}")


def _corpus(args: argparse.Namespace) -> None:
    from .data.corpus import build_corpus

    print(build_corpus(args.out, hours=args.hours, seed=args.seed, workers=args.workers, progress=True,
                       sources=args.sources))


def _faceset(args: argparse.Namespace) -> None:
    from .data.faceset import build_faceset

    summary = build_faceset(args.out, manifest=args.manifest, cache=args.cache, progress=True)
    print(summary)


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    config = TrainConfig(data=args.data, out=args.out, model=args.config, steps=args.steps, batch_size=args.batch_size,
                         grad_accum=args.grad_accum, lr=args.lr, mixed_precision=args.mixed_precision,
                         workers=args.workers, wav2lip=args.wav2lip, freeze_audio=args.freeze_audio,
                         push_to_hub=args.push_to_hub, resume=args.resume, seed=args.seed,
                         mouth_weight=args.mouth_weight, mask_weight=args.mask_weight,
                         val_data=args.val_data, val_every=args.val_every, save_every=args.save_every,
                         disc_channels=args.disc_channels, lip_reader=args.lip_reader, lip_weight=args.lip_weight,
                         augment=args.augment, augment_audio=args.augment_audio, pack=args.pack,
                         flow_weight=args.flow_weight, gate_weight=args.gate_weight, moved_weight=args.moved_weight,
                         val_lmd=not args.no_val_lmd,
                         audio_start=None if args.audio_start == "none" else args.audio_start,
                         model_overrides={"motion": args.motion} if args.motion else {})
    metrics = train(config)
    print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


def _pack(args: argparse.Namespace) -> None:
    from .data.pack import corpus_speech, faceset_sources, write_faces, write_speech

    out = Path(args.out)
    utterances = corpus_speech(args.corpus, args.hours, args.seed, args.augmented, sources=args.sources)
    if args.faces:
        faces = write_faces(faceset_sources(args.faces), out, morphs=args.morphs, seed=args.seed, max_frames=args.frames)
        print(f"{out}: {faces['identities']} identities ({args.morphs} of them morphs), {faces['frames']} frames")
        for line in faces["left_out"]:
            print(f"  left out {line}")
    speech = write_speech(utterances, out)
    print(f"{out}: {speech['utterances']} utterances of {speech['voices']} voices, {speech['hours']:.2f} h")


def _visemes(args: argparse.Namespace) -> None:
    from .model.viseme_predictor import load_viseme_predictor
    from .mouth_track import format_track, mouth_track

    track = mouth_track(args.audio, fps=args.fps, model=load_viseme_predictor(args.model))
    print(json.dumps(track) if args.json else format_track(track))


def _train_audio(args: argparse.Namespace) -> None:
    from .train_audio import CorpusWindows, MixedWindows, PackWindows, train_viseme_predictor

    if bool(args.corpus) == bool(args.pack):
        raise DCKError("give one of --corpus (a speech corpus folder) or --pack (a training pack)")
    lead = args.window_lead or 0
    if args.start:  # the windows must sit where the model continued from expects them
        from .model.viseme_predictor import load_viseme_predictor

        lead = load_viseme_predictor(args.start).window_lead
        if args.window_lead not in (None, lead):
            raise DCKError(f"{args.start} has window lead {lead}; --window-lead {args.window_lead} does not match it")
    if args.corpus:
        data = CorpusWindows(args.corpus, seed=args.seed, window_lead=lead)
    else:
        packs = [PackWindows(pack, seed=args.seed, window_lead=lead) for pack in args.pack]
        data = packs[0] if len(packs) == 1 else MixedWindows(packs)
    result = train_viseme_predictor(data, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                    workers=args.workers, window_lead=lead, device=args.device,
                                    start=args.start, seed=args.seed, minutes=args.minutes,
                                    closed_weight=args.closed_weight)
    print(f"{args.out}: {result['steps']} steps in {result['minutes']:.1f} min; last losses "
          + ", ".join(f"{k} {v:.3f}" for k, v in result.items() if k not in ("steps", "minutes")))


def _evaluate_visemes(args: argparse.Namespace) -> None:
    from .evaluate_visemes import evaluate_visemes, format_viseme_table
    from .model.viseme_predictor import load_viseme_predictor

    rows = evaluate_visemes(load_viseme_predictor(args.model), args.corpus, split=args.split)
    print(format_viseme_table(rows))


def _adapt(args: argparse.Namespace) -> None:
    from .adapt import adapt

    options = {} if args.steps is None else {"steps": args.steps}
    print(adapt(args.face, args.out, checkpoint=args.checkpoint, groups=args.groups, seconds=args.seconds,
                seed=args.seed, work=args.work, **options))


def _train_lips(args: argparse.Namespace) -> None:
    from .train_lips import train_lip_reader

    metrics = train_lip_reader(args.data, args.out, val_data=args.val_data, steps=args.steps, seed=args.seed)
    where = "held-out frames" if args.val_data else "training frames (no --val-data)"
    print(f"{args.out}: mean lip landmark error {metrics['lip_error_px']:.2f} px on {where}")


def _add_baseline(models: dict) -> None:
    """`--baseline`: the network-free row, the predicted visemes drawn onto each face."""
    from .baseline import DrawnVisemes

    models["drawn visemes (no network)"] = DrawnVisemes()


def _evaluate(args: argparse.Namespace) -> None:
    from . import evaluate
    from .data import PairDataset

    models = evaluate.load_checkpoints(args.checkpoint)
    if bool(args.data) == bool(args.pack):
        raise DCKError("give held-out clip folders (--data) or a training pack (--pack), not both")
    lead = next(iter(models.values())).window_lead
    if args.pack:
        from .data.rendered import RenderedPairs

        dataset = RenderedPairs(args.pack, args.faces, args.pairs, args.seed, degrade=False, window_lead=lead,
                                speech_split=args.speech, voices=args.voices)
    else:
        dataset = PairDataset(args.data, seed=args.seed, window_lead=lead)
    if args.baseline:
        _add_baseline(models)
    rows = evaluate.evaluate(models, dataset, args.pairs, seed=args.seed, device=args.device or "cpu")
    print(evaluate.format_table(rows, min(args.pairs, len(dataset))))


def _sync(args: argparse.Namespace) -> None:
    from .evaluate import delay_sweep, format_sweep
    from .model import load_model
    from .pipeline import TalkingFacePipeline, load_speech

    for audio in args.audio:  # a bad recording stops the command before minutes of rendering, not after
        load_speech(audio)
    model, what = load_model(args.checkpoint)
    pipe = TalkingFacePipeline(model, device=args.device, close_mouth=not args.keep_mouth)
    names = [Path(audio).name for audio in args.audio]
    if len(set(names)) < len(names):
        names = list(args.audio)
    sweeps = {name: delay_sweep(pipe, args.face, audio, args.max_delay) for name, audio in zip(names, args.audio)}
    print(f"{args.face} speaking {', '.join(args.audio)}, model: {what}; sync score at each delay:\n")
    print(format_sweep(sweeps))


def _lip_phones(args: argparse.Namespace) -> None:
    from .evaluate import format_lip_phones, held_out_recordings, lip_phone_measures, load_checkpoints, pooled
    from .model import load_model
    from .pipeline import TalkingFacePipeline

    recordings = held_out_recordings(args.corpus, args.per_voice)
    models = load_checkpoints(args.checkpoint) if args.checkpoint else {"bundled": load_model()[0]}
    if args.baseline:
        _add_baseline(models)
    pipes = {name: TalkingFacePipeline(model, device=args.device, close_mouth=not args.keep_mouth)
             for name, model in models.items()}
    print(f"{len(recordings)} recordings: " + ", ".join(f"{voice} {path.name}" for voice, path, _ in recordings) + "\n")
    results = {Path(face).name: {name: pooled([lip_phone_measures(pipe, face, path, phones) for _, path, phones in recordings])
                                 for name, pipe in pipes.items()} for face in args.face}
    print(format_lip_phones(results))


def _scorecard(args: argparse.Namespace) -> None:
    from .evaluate import load_checkpoints
    from .scorecard import format_scorecard, scorecard

    models = load_checkpoints(args.checkpoint)
    if args.baseline:
        _add_baseline(models)
    card = scorecard(models, args.pack, args.corpus, pairs=args.pairs, faces=args.faces, spoken=args.recordings,
                     seed=args.seed, device=args.device or "cpu", videos=args.videos, table_one_only=args.table_one)
    print(format_scorecard(card))


def _data_sync(args: argparse.Namespace) -> None:
    from .evaluate import clip_sync, format_clip_sync

    print("\n\n".join(format_clip_sync(root, clip_sync(root, args.max_offset), args.max_offset, args.worst)
                      for root in args.data))


def _app(args: argparse.Namespace) -> None:
    from .webapp import build_demo, launch

    launch(build_demo(checkpoint=args.checkpoint, device=args.device), server_name=args.host, server_port=args.port)


def _demo(args: argparse.Namespace) -> None:
    from .examples import FACE, SPEECH
    from .model import load_model
    from .pipeline import TalkingFacePipeline

    model, what = load_model(args.checkpoint)
    summary = TalkingFacePipeline(model, device=args.device).generate(FACE, SPEECH, args.out, progress=True)
    print(summary)
    print(f"demo: {Path(args.out).resolve()} (a photo and a recording no training set has; model: {what})")


def _checked(convert: Callable[[str], float], accept: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    """An argparse type: `convert(text)` when `accept` takes it, else the one-line error "must be WANTED"."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse


_pixels_or_zero = _checked(int, lambda v: v >= 0, "0 or a positive number of pixels")  # a size, or 0 for "keep"
_index = _checked(int, lambda v: v >= 0, "0 or a positive whole number")
_positive_float = _checked(float, lambda v: v > 0, "a positive number")
_positive_int = _checked(int, lambda v: v > 0, "a positive whole number")
_port = _checked(int, lambda v: 0 < v < 65536, "a port number, 1 to 65535")


def _device(text: str) -> str:
    """An argparse type: a torch device this machine has (cpu, cuda, cuda:N, mps), else a one-line error."""
    from .pipeline import check_device

    try:
        check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


KEEP_MOUTH = "feed the network the face's own mouth as it is (by default an open mouth is closed first)"


def build_parser() -> argparse.ArgumentParser:
    from .bench import BATCH_SIZES, DTYPES, RESOLUTIONS
    from .model import PRESETS
    from .pipeline import BATCH_SIZE, PHOTO_SIZE
    from .timeline import POLICIES

    parser = argparse.ArgumentParser(prog="dck-talking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="lip-sync score of rendered videos as the speech is delayed -N..+N frames")
    sync.add_argument("--face", required=True, help="face video or photo")
    sync.add_argument("--audio", required=True, nargs="+", action="extend",
                      help="speech recordings (one column each, and their mean)")
    sync.add_argument("--checkpoint", help="checkpoint folder or Hub repo id (default: $DCK_CHECKPOINT, else bundled)")
    sync.add_argument("--max-delay", type=int, default=5, help="largest delay tried, in video frames")
    sync.add_argument("--keep-mouth", action="store_true", help=KEEP_MOUTH)
    sync.add_argument("--device", type=_device, help="cuda, mps or cpu (default: the best available)")
    sync.set_defaults(func=_sync)

    lip_phones = commands.add_parser("lip-phones", help="rendered lips against the phones of held-out human recordings: "
                                                       "m/b/p closure and correlation with the phones' openness")
    lip_phones.add_argument("--face", nargs="+", required=True, help="face photos or videos")
    lip_phones.add_argument("--corpus", required=True, help="a speech corpus: its held-out human recordings with "
                                                            "forced-aligned phones are spoken")
    lip_phones.add_argument("--checkpoint", action="append", help="[NAME=]folder or repo id (repeatable; default: bundled)")
    lip_phones.add_argument("--baseline", action="store_true", help="add the network-free baseline (drawn visemes)")
    lip_phones.add_argument("--per-voice", type=int, default=2, help="recordings of each held-out voice")
    lip_phones.add_argument("--device", type=_device, help="cuda, mps or cpu (default: the best available)")
    lip_phones.add_argument("--keep-mouth", action="store_true", help=KEEP_MOUTH)
    lip_phones.set_defaults(func=_lip_phones)

    card = commands.add_parser("scorecard", help="seen/unseen faces x seen/unseen voices (LMD against identity, "
                                                 "sharpness, sync, phones) and Table I on unseen faces and voices")
    card.add_argument("--checkpoint", action="append", required=True,
                      help="[NAME=]folder or repo id (repeatable; the first is the one judged in Table I)")
    card.add_argument("--pack", required=True, help="a training pack: its faces and the pairs rendered from them")
    card.add_argument("--corpus", required=True, help="the speech corpus the pack came from: its held-out human "
                                                      "recordings and espeak-ng training voices are spoken")
    card.add_argument("--baseline", action="store_true", help="add the network-free baseline (drawn visemes)")
    card.add_argument("--pairs", type=int, default=256, help="pairs per grid cell and in Table I")
    card.add_argument("--faces", type=int, default=3, help="faces rendered per grid cell (videos first)")
    card.add_argument("--recordings", type=int, default=3, help="recordings each face speaks per grid cell")
    card.add_argument("--videos", help="keep the rendered videos in this folder (a subfolder per model)")
    card.add_argument("--table-one", action="store_true", help="only Table I: no grids, no videos (minutes)")
    card.add_argument("--device", type=_device)
    card.add_argument("--seed", type=int, default=0)
    card.set_defaults(func=_scorecard)

    data_sync = commands.add_parser("data-sync", help="lip-sync score of stored clips (prepare/synth output) "
                                    "against their own sound: finds clips out of step")
    data_sync.add_argument("--data", action="append", required=True, help="prepare or synth output folder (repeatable)")
    data_sync.add_argument("--max-offset", type=int, default=5, help="largest audio shift tried, in video frames")
    data_sync.add_argument("--worst", type=int, default=10, help="how many out-of-step clips to list")
    data_sync.set_defaults(func=_data_sync)

    demo = commands.add_parser("demo", help="lip-sync the bundled example photo to the bundled speech (demo.mp4)")
    demo.add_argument("--out", default="demo.mp4", help="output video (default: demo.mp4 here)")
    demo.add_argument("--checkpoint", help="checkpoint folder or Hub repo id (default: $DCK_CHECKPOINT, else bundled)")
    demo.add_argument("--device", type=_device, help="cuda, mps or cpu (default: the best available)")
    demo.set_defaults(func=_demo)

    bench = commands.add_parser("bench", help="measure model throughput (ms/frame, frames/s) as a table")
    bench.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    bench.add_argument("--batch-sizes", nargs="+", type=_positive_int,
                       help=f"default: {' '.join(map(str, BATCH_SIZES))}; with --pipeline the first one "
                            f"(default: the pipeline's own, {BATCH_SIZE})")
    bench.add_argument("--dtypes", nargs="+", choices=list(DTYPES), help="default: fp32 bf16 (CPU), fp32 fp16 bf16 (GPU); with --pipeline the first "
                       "one (default: the pipeline's own choice for the device)")
    bench.add_argument("--device", type=_device, help="cpu, cuda or mps (default: the best available)")
    bench.add_argument("--seconds", type=float, default=2.0, help="time spent on each row, at least 2 calls")
    bench.add_argument("--pipeline", action="store_true",
                       help="end-to-end frames/s on made-up 720p/1080p videos, split by stage, for a first "
                            "call and a second one (one preset, default compact)")
    bench.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    bench.add_argument("--keep-mouth", action="store_true", help="with --pipeline: " + KEEP_MOUTH)
    bench.add_argument("--video-seconds", type=float, default=10.0, help="length of each --pipeline input")
    bench.set_defaults(func=_bench)

    generate = commands.add_parser("generate", help="lip-sync a face video or photo to a speech recording")
    generate.add_argument("--face", required=True, help="face video (any format FFmpeg reads) or photo")
    generate.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound is used")
    generate.add_argument("--out", required=True, help="output video (.mp4; .mov, .mkv and .m4v work too)")
    generate.add_argument("--checkpoint", help="checkpoint folder or Hugging Face Hub repo id")
    generate.add_argument("--device", type=_device, help="cpu, cuda or mps (default: the best available)")
    generate.add_argument("--length", default="pingpong", choices=POLICIES,
                          help="how a video shorter than the audio is extended (default: pingpong)")
    generate.add_argument("--face-index", type=_index, default=0,
                          help="which face when there are several: 0 = the largest (`dck-talking faces FILE` "
                               "numbers them)")
    generate.add_argument("--batch-size", type=_positive_int, default=BATCH_SIZE,
                          help=f"frames per model call (default: {BATCH_SIZE})")
    generate.add_argument("--keep-mouth", action="store_true", help=KEEP_MOUTH)
    generate.add_argument("--fps", type=_positive_float, default=25.0, help="frame rate of the video made from a photo")
    generate.add_argument("--photo-size", type=_pixels_or_zero, default=PHOTO_SIZE,
                          help="a photo larger than this many pixels on its long side is scaled down to it (0: keep)")
    generate.set_defaults(func=_generate)

    faces = commands.add_parser("faces", help="list the faces in a photo or video, largest first (the numbers "
                                              "--face-index takes), and draw them numbered")
    faces.add_argument("file", help="face photo or video (a video: its first frame with a face, which sets the choice)")
    faces.add_argument("--out", help="write the picture with numbered boxes here (.png or .jpg)")
    faces.add_argument("--photo-size", type=_pixels_or_zero, default=PHOTO_SIZE,
                       help="as for generate: a larger photo is scaled down to this many pixels first (0: keep)")
    faces.set_defaults(func=_faces)

    app = commands.add_parser("app", help="serve the Gradio web demo (the Hugging Face Space) on this machine")
    app.add_argument("--checkpoint", help="checkpoint folder or Hugging Face Hub repo id "
                                          "(default: $DCK_CHECKPOINT, else an untrained model)")
    app.add_argument("--device", type=_device, help="cpu, cuda or mps (default: the best available)")
    app.add_argument("--host", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    app.add_argument("--port", type=_port, help="port (default: 7860, or the next free one)")
    app.set_defaults(func=_app)

    prepare = commands.add_parser("prepare", help="talking-face videos with sound -> training clips (crops, mel, lips)")
    prepare.add_argument("videos", help="folder of videos, any depth (LRS2, VoxCeleb, HDTF layouts or your own)")
    prepare.add_argument("out", help="output folder (clips/, index.json); re-running resumes")
    prepare.add_argument("--size", type=int, default=256, help="face crop size: the model's image size")
    prepare.add_argument("--workers", type=int, help="processes (default: one per CPU)")
    prepare.add_argument("--min-seconds", type=float, default=0.5, help="shorter clips are skipped")
    prepare.add_argument("--paired", action="store_true",
                         help="VIDEOS/<group>/<speech>.mp4 are your own pairs (same head motion, different "
                              "speech): written as groups, cropped alike")
    prepare.add_argument("--retry-skipped", action="store_true", help="also retry sources skipped by an earlier run")
    prepare.set_defaults(func=_prepare)

    synth = commands.add_parser("synth", help="synthetic paired videos: one face and head motion, several speeches")
    synth.add_argument("--faces", nargs="+", action="extend", required=True,
                       help="face photos or silent face videos, or folders")
    synth.add_argument("--speech", nargs="+", action="extend",
                       help="speech recordings or folders (pocketsphinx phones; a transcript NAME.txt beside "
                            "a recording enables forced alignment)")
    synth.add_argument("--text", nargs="+", action="extend",
                       help="sentences, or text files with one per line, spoken by espeak-ng "
                            "(default without --speech: built-in sentences)")
    synth.add_argument("--out", required=True, help="output folder (groups/, index.json); re-running resumes")
    synth.add_argument("--groups", type=int, default=8, help="identity + head motion combinations")
    synth.add_argument("--speeches-per-group", type=int, default=4, help="different speeches rendered per group")
    synth.add_argument("--seconds", type=float, default=8.0, help="length of every clip")
    synth.add_argument("--size", type=int, default=256, help="face crop size: the model's image size")
    synth.add_argument("--workers", type=int, help="processes (default: one per CPU)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--voices", nargs="+", action="extend",
                       help="espeak-ng voices to draw from (default: 10 English voices)")
    synth.add_argument("--motion", type=float, default=1.0, help="head motion of photos (0 = still, 1 = natural)")
    synth.add_argument("--contact-sheet", metavar="PNG", help="also write a contact sheet of synthetic frames")
    synth.add_argument("--check", action="store_true",
                       help="measure the lip gap with MediaPipe on the results against the viseme openness")
    synth.set_defaults(func=_synth)

    corpus = commands.add_parser("corpus", help="speech of many voices with phone timings (installed synthesisers "
                                                "and recordings), for pretraining the audio encoder")
    corpus.add_argument("--out", required=True, help="output folder (audio/, phones/, index.json); re-running resumes")
    corpus.add_argument("--hours", type=float, default=5.0,
                        help="hours of synthesised training speech, shared by the synthesiser voices "
                             "(the installed recordings come whole on top)")
    corpus.add_argument("--seed", type=int, default=0, help="which texts each synthesiser voice speaks")
    corpus.add_argument("--workers", type=int, default=1, help="processes")
    corpus.add_argument("--sources", nargs="+", help="only these engines (names or shell patterns: espeak-ng festival "
                                                     "flite kokoro librivox codec2-examples pocketsphinx-testdata "
                                                     "'fillets-ng-data-*'); --hours is shared among them")
    corpus.set_defaults(func=_corpus)

    faceset = commands.add_parser("faceset", help="real faces for training and evaluation: fetch the packages of "
                                                  "recipes/faces.csv and cut out each person's face")
    faceset.add_argument("--out", required=True, help="output folder (train/, eval/, index.json)")
    faceset.add_argument("--manifest", help="the manifest of faces (CSV; default: recipes/faces.csv)")
    faceset.add_argument("--cache", help="where downloaded packages are kept for reuse (default: a folder in /tmp)")
    faceset.set_defaults(func=_faceset)

    train = commands.add_parser("train", help="train or fine-tune DCKTalker (L1 x 10 + LSGAN), with accelerate")
    train.add_argument("--data", action="append", default=[], help="a prepare/synth output folder (repeatable)")
    train.add_argument("--pack", help="a training pack (dck-talking pack): pairs rendered on the fly, its eval split "
                                      "for validation; instead of --data")
    train.add_argument("--config", default="compact",
                       help="preset name (paper, compact), a config.json, or a checkpoint folder to fine-tune")
    train.add_argument("--out", required=True, help="run folder: checkpoints, TensorBoard logs")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the final model with its metrics")
    train.add_argument("--steps", type=_positive_int, default=20000)
    train.add_argument("--batch-size", type=_positive_int, default=8)
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--lr", type=float, default=2e-4)
    train.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--wav2lip", help="start the audio encoder from a Wav2Lip/SyncNet checkpoint")
    train.add_argument("--freeze-audio", action="store_true",
                       help="keep the audio encoder fixed (recommended with the bundled encoder: fine-tuning it with "
                            "the U-Net made the lips follow the phones less well; docs/audio-side.md)")
    train.add_argument("--audio-start", default="bundled", metavar="DIR",
                       help="VisemePredictor (dck-talking train-audio) a fresh model's audio encoder starts from: "
                            "'bundled' (default), a folder, or 'none' for random weights")
    train.add_argument("--motion", choices=["image", "warp"],
                       help="how a fresh model makes its motion image: painted (the paper) or its input warped")
    train.add_argument("--flow-weight", type=float, default=0.0,
                       help="with --pack and --motion warp: L1 of the flow against the renderer's, near the lips")
    train.add_argument("--gate-weight", type=float, default=0.0,
                       help="with --pack and --motion warp: cross-entropy of the gate against the painted mouth")
    train.add_argument("--moved-weight", type=float, default=0.0,
                       help="with --pack and --motion warp: cross-entropy of the mask against where the face moved")
    train.add_argument("--no-val-lmd", action="store_true", help="validate with PSNR and SSIM only (no MediaPipe)")
    train.add_argument("--mouth-weight", type=float, default=0.0,
                       help="extra L1 of the output and the motion image in a box around the target's lips")
    train.add_argument("--mask-weight", type=float, default=0.0, help="extra pull of the attention mask to 0")
    train.add_argument("--lip-reader", metavar="DIR",
                       help="a LipReader (dck-talking train-lips): adds a loss on the lip shape read off the output")
    train.add_argument("--lip-weight", type=float, default=0.3, help="weight of that loss per pixel of lip distance")
    train.add_argument("--augment", action="store_true",
                       help="mirror half of the pairs and jitter their colours (more identities out of few faces)")
    train.add_argument("--augment-audio", action="store_true",
                       help="vary the recording level and cut off the high bands of half of the sounds "
                            "(telephone and codec recordings)")
    train.add_argument("--disc-channels", type=int, default=64,
                       help="width of the PatchGAN discriminator (64 as pix2pix; 32 is 4x cheaper on a CPU)")
    train.add_argument("--val-data", action="append", default=[],
                       help="held-out prepare/synth folder for validation (repeatable; default: pairs held out of --data)")
    train.add_argument("--val-every", type=int, default=500)
    train.add_argument("--save-every", type=int, default=1000)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)

    adapt = commands.add_parser("adapt", help="fit a model to one face (photo or video): minutes of fine-tuning on "
                                              "synthetic pairs of it, speaking espeak-ng sentences")
    adapt.add_argument("--face", required=True, help="face photo or video")
    adapt.add_argument("--out", required=True, help="folder for the adapted checkpoint (use it with --checkpoint)")
    adapt.add_argument("--checkpoint", help="checkpoint to start from (default: $DCK_CHECKPOINT, else bundled)")
    adapt.add_argument("--steps", type=int, help="fine-tuning steps at batch 8 (default: 600)")
    adapt.add_argument("--groups", type=int, default=2, help="head motions of the face, 4 speeches each")
    adapt.add_argument("--seconds", type=float, default=4.0, help="length of every synthetic clip")
    adapt.add_argument("--work", help="keep the synthetic pairs and the training run here (default: removed)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.set_defaults(func=_adapt)

    lips = commands.add_parser("train-lips", help="train a LipReader (lip landmarks from a crop) for train --lip-reader")
    lips.add_argument("--data", action="append", required=True, help="a prepare/synth output folder (repeatable)")
    lips.add_argument("--val-data", action="append", help="held-out folder to measure it on (repeatable)")
    lips.add_argument("--out", required=True, help="folder for the LipReader (config.json + model.safetensors)")
    lips.add_argument("--steps", type=int, default=2500)
    lips.add_argument("--seed", type=int, default=0)
    lips.set_defaults(func=_train_lips)

    pack = commands.add_parser("pack", help="a training pack for train --pack: aligned faces of a face set and "
                                            "the mels and mouth tracks of a speech corpus, small enough to carry")
    pack.add_argument("--faces", help="a face set (dck-talking faceset); without it the pack holds speech only "
                                       "(for train-audio --pack)")
    pack.add_argument("--corpus", required=True, help="a speech corpus (dck-talking corpus)")
    pack.add_argument("--out", required=True, help="the pack's folder")
    pack.add_argument("--hours", type=float, default=1.0, help="hours of training speech (every eval voice is added)")
    pack.add_argument("--augmented", type=float, default=0.5, help="share of training speech made into other voices")
    pack.add_argument("--morphs", type=int, default=200, help="identities made by morphing two training faces")
    pack.add_argument("--frames", type=int, default=8, help="frames taken from each video")
    pack.add_argument("--seed", type=int, default=0)
    pack.add_argument("--sources", nargs="+", help="only the corpus voices of these engines (names or shell "
                                                   "patterns, as for corpus --sources)")
    pack.set_defaults(func=_pack)

    visemes = commands.add_parser("visemes", help="the mouth at every video frame of a speech recording: "
                                                 "open, spread, closed (0..1), as a table or JSON")
    visemes.add_argument("--audio", required=True, help="speech: any audio file, or a video whose sound is used")
    visemes.add_argument("--fps", type=_positive_float, default=25.0, help="video frames per second (default 25)")
    visemes.add_argument("--json", action="store_true", help='print {"fps": ..., "frames": [{"t", "open", "spread", '
                                                            '"closed"}, ...]} instead of a table')
    visemes.add_argument("--model", help="a VisemePredictor folder (default: the bundled one)")
    visemes.set_defaults(func=_visemes)

    train_audio = commands.add_parser("train-audio", help="pretrain the audio encoder on many voices to predict the "
                                                          "mouth (a VisemePredictor, the one train starts from)")
    train_audio.add_argument("--corpus", help="a speech corpus (dck-talking corpus), augmented as it is drawn")
    train_audio.add_argument("--pack", nargs="+", help="or training packs' speech (mels only: level and band "
                             "augmentation); several packs give equal shares of the windows")
    train_audio.add_argument("--out", required=True, help="folder for the VisemePredictor")
    train_audio.add_argument("--start", help="a VisemePredictor folder to continue from")
    train_audio.add_argument("--steps", type=_positive_int, default=20000)
    train_audio.add_argument("--batch-size", type=_positive_int, default=128)
    train_audio.add_argument("--lr", type=float, default=1e-3)
    train_audio.add_argument("--window-lead", type=int,
                             help="mel steps of sound before the frame in its window (default: the --start model's, "
                                  "else 0: the window starts at it)")
    train_audio.add_argument("--minutes", type=_positive_float, help="stop after this much wall time, if sooner")
    train_audio.add_argument("--closed-weight", type=_positive_float, default=0.5,
                             help="weight of the closed-lips loss (openness weighs 1, spread 0.5; default 0.5)")
    train_audio.add_argument("--workers", type=int, default=2)
    train_audio.add_argument("--device", type=_device, help="cuda, mps or cpu (default: the best available)")
    train_audio.add_argument("--seed", type=int, default=0)
    train_audio.set_defaults(func=_train_audio)

    evaluate_visemes = commands.add_parser("evaluate-visemes", help="predicted mouths against the phones of a "
                                                                    "corpus's held-out voices, beside a loudness baseline")
    evaluate_visemes.add_argument("--corpus", required=True, help="a speech corpus folder (dck-talking corpus)")
    evaluate_visemes.add_argument("--model", help="a VisemePredictor folder (default: the bundled one)")
    evaluate_visemes.add_argument("--split", default="eval", help="which split's voices (default: eval)")
    evaluate_visemes.set_defaults(func=_evaluate_visemes)

    evaluate = commands.add_parser("evaluate", help="PSNR / SSIM / LMD on held-out pairs, vs the identity baseline")
    evaluate.add_argument("--checkpoint", action="append", required=True, help="[NAME=]folder or repo id (repeatable)")
    evaluate.add_argument("--data", action="append", help="held-out prepare/synth folder (repeatable)")
    evaluate.add_argument("--pack", help="or pairs rendered from a training pack (see --faces, --speech, --voices)")
    evaluate.add_argument("--faces", choices=["train", "eval"], default="eval", help="the pack's faces (default: eval)")
    evaluate.add_argument("--speech", choices=["train", "eval"], default="eval", help="the pack's speech (default: eval)")
    evaluate.add_argument("--voices", nargs="+", help="only these voices of the pack (names or patterns: espeak-ng/*)")
    evaluate.add_argument("--baseline", action="store_true",
                          help="add the network-free baseline: the predicted visemes drawn onto each face")
    evaluate.add_argument("--pairs", type=int, default=256)
    evaluate.add_argument("--device", type=_device)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DCKError as exc:
        _close_progress_bars()
        print(f"dck-talking: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("dck-talking: interrupted", file=sys.stderr)
        return 130
    return 0


def _close_progress_bars() -> None:
    """Close the progress bars a stopped command left open, so the message starts on a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
