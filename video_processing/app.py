"""A web page to show a trained model: upload a video, get its top-5, its labels over time and an annotated copy.

    pip install -e ".[demo]"
    python -m video_processing.app CHECKPOINT [--port 7860] [--host 127.0.0.1]

The page runs what `predict` runs (`inference/predictions.py`), so its numbers are those of
`predict CHECKPOINT VIDEO --json` (the top-5 of the whole video) and `predict CHECKPOINT VIDEO --segments --json
--render OUT.mp4` (each window's label, the segments, the annotated copy), also shown as that JSON. CHECKPOINT is
what predict takes: a .ckpt, an .onnx written by export, or a backbone name. The page is served on --host (this
machine only by default) and nothing is sent elsewhere: Gradio's analytics and version check are off, no share
link is made, no Node server is started.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP

INSTALL_DEMO = 'the app needs Gradio: pip install -e ".[demo]"'


def classify(classifier, video: str | Path, out_dir: str | Path) -> dict:
    """The page's numbers for `video`: {"top": as predict --json, "windows" and "segments": as predict --segments
    --json, "annotated": the path of the annotated copy in `out_dir`}. Raises VideoError naming a bad file."""
    from video_processing import predict
    from video_processing.data.video import VideoError
    from video_processing.inference.predictions import (
        SegmentWriter,
        predict_segments,
        predict_video,
        prediction_record,
    )
    from video_processing.inference.render import AnnotatedVideo

    top = prediction_record(predict_video(classifier, video, top_k=5))["top"]
    annotated_path = Path(out_dir) / f"{Path(video).stem}_annotated.mp4"
    args = predict.parser().parse_args(["CHECKPOINT", str(video), "--segments"])  # the command line's defaults
    lines = io.StringIO()
    annotated = AnnotatedVideo(annotated_path, classifier.class_names)
    if not predict_segments(classifier, str(video), args, SegmentWriter("json", lines), annotated):
        raise VideoError(video, "cannot be labelled over time (the server's log says why)")
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    rows = {kind: [_fields(r) for r in records if r["kind"] == kind] for kind in ("window", "segment")}
    return {"top": top, "windows": rows["window"], "segments": rows["segment"], "annotated": str(annotated_path)}


def _fields(record: dict) -> dict:
    """A row of predict --segments --json without the source's path and kind (the app's JSON groups rows by kind)."""
    return {key: value for key, value in record.items() if key not in ("source", "kind")}


def build_page(classifier, title: str):
    """The Gradio page: a video in; the top-5, the segments, the annotated video and the JSON out."""
    import gradio as gr

    from video_processing.data.video import VideoError

    out_dir = tempfile.mkdtemp(prefix="video_processing_app_")

    def run(video: str | None):
        if not video:
            raise gr.Error("upload a video first")
        try:
            result = classify(classifier, video, out_dir)
        except VideoError as e:
            raise gr.Error(f"{Path(video).name}: {e.reason}") from None
        segments = [[s["start_s"], s["end_s"], s["label"], round(s["probability"], 4)] for s in result["segments"]]
        numbers = {key: result[key] for key in ("top", "windows", "segments")}
        top = {entry["class"]: entry["probability"] for entry in result["top"]}
        return top, result["annotated"], segments, json.dumps(numbers, indent=1)

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"# {title}\nUpload a video: its top-5 classes, its labels over time and an annotated copy.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], elem_id="video")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column():
                top = gr.Label(num_top_classes=5, label="Top-5 (whole video)", elem_id="top")
                annotated = gr.Video(label="Annotated", elem_id="annotated", interactive=False)
        segments = gr.Dataframe(
            headers=["start (s)", "end (s)", "label", "probability"], label="Labels over time", elem_id="segments"
        )
        numbers = gr.Textbox(label="As predict --json", lines=6, max_lines=20, elem_id="numbers")
        button.click(run, inputs=video, outputs=[top, annotated, segments, numbers])
    return page


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="what predict takes: a .ckpt, an .onnx written by export, a backbone name")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: other machines too)")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no telemetry, no version check
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL_DEMO}", file=sys.stderr)
        return 2
    from video_processing.inference.predictions import load_for_command

    classifier = load_for_command(args.checkpoint, args.trust_checkpoint)
    if classifier is None:
        return 2
    page = build_page(classifier, f"{Path(args.checkpoint).name}: {len(classifier.class_names)} classes")
    page.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
