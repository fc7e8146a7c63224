"""`python -m video_processing.lessons.draw_figures` writes the README's figures, small enough to commit."""

from video_processing.lessons.draw_figures import main


def test_writes_the_three_figures(tmp_path, capsys):
    main(["--out", str(tmp_path / "docs")])
    names = sorted(path.name for path in (tmp_path / "docs").iterdir())
    assert names == ["clip_frames.png", "clip_timeline.png", "train_transform_steps.png"]
    for path in (tmp_path / "docs").iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < path.stat().st_size < 300_000
    assert "clip_timeline.png" in capsys.readouterr().out
