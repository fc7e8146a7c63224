"""`python -m video_processing.split`: groups stay whole, shares hold per class, the source is untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from video_processing import split
from video_processing.data.layouts import load_dataset
from video_processing.data.splits import SplitError, split_folder

UCF_GROUP = r"_g(\d+)_"


def make_source(root: Path, groups_per_class: dict[str, int], clips_per_group: int = 3) -> Path:
    """root/<class>/v_<class>_gNN_cMM.avi files (bytes, not video: splitting never decodes), plus a note."""
    for name, groups in groups_per_class.items():
        (root / name).mkdir(parents=True)
        for g in range(groups):
            for c in range(clips_per_group):
                (root / name / f"v_{name}_g{g:02d}_c{c:02d}.avi").write_bytes(f"{name} {g} {c}".encode())
        (root / name / "notes.txt").write_text("not a video")
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, float]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime) for p in sorted(root.rglob("*")) if p.is_file()
    }


def placed(dst: Path) -> dict[str, dict[str, list[str]]]:
    """split -> class -> file names."""
    return {
        s.name: {c.name: sorted(f.name for f in c.iterdir()) for c in sorted(s.iterdir())}
        for s in sorted(dst.iterdir())
    }


def test_groups_never_straddle_splits_and_shares_hold_per_class(tmp_path):
    src = make_source(tmp_path / "src", {"run": 20, "jump": 10})
    result = split_folder(src, tmp_path / "dst", val=0.2, test=0.1, group_pattern=UCF_GROUP, seed=3)
    layout = placed(tmp_path / "dst")
    for name, groups in {"run": 20, "jump": 10}.items():
        owner = {}
        for split_name, classes in layout.items():
            for file in classes[name]:
                group = file.split("_g")[1][:2]
                assert owner.setdefault(group, split_name) == split_name, f"group {group} of {name} in two splits"
        assert len(owner) == groups
        clips = {s: len(layout[s][name]) for s in ("train", "val", "test")}
        total = groups * 3
        assert clips == result.counts[name]
        assert sum(clips.values()) == total  # every clip placed once; notes.txt left out
        # whole groups of 3 clips: each split within one group of its share
        for split_name, share in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
            assert abs(clips[split_name] - share * total) <= 3, (name, clips)
    assert result.groups == {"jump": 10, "run": 20}
    assert result.skipped == [src / "jump" / "notes.txt", src / "run" / "notes.txt"]


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    src = make_source(tmp_path / "src", {"a": 12, "b": 12})
    layouts = []
    for i, seed in enumerate((7, 7, 8)):
        split_folder(src, tmp_path / f"dst{i}", group_pattern=UCF_GROUP, seed=seed)
        layouts.append(placed(tmp_path / f"dst{i}"))
    assert layouts[0] == layouts[1]
    assert layouts[0] != layouts[2]


def test_without_a_pattern_each_clip_is_its_own_group(tmp_path):
    src = make_source(tmp_path / "src", {"a": 4, "b": 4}, clips_per_group=5)  # 20 clips a class
    result = split_folder(src, tmp_path / "dst", val=0.2, test=0.1)
    assert result.counts == {name: {"train": 14, "val": 4, "test": 2} for name in ("a", "b")}
    assert result.groups == {"a": 20, "b": 20}


def test_no_test_share_writes_no_test_split(tmp_path):
    src = make_source(tmp_path / "src", {"a": 5, "b": 5})
    split_folder(src, tmp_path / "dst", val=0.2, test=0, group_pattern=UCF_GROUP)
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["train", "val"]


def test_hard_links_and_the_source_unchanged(tmp_path):
    src = make_source(tmp_path / "src", {"a": 4, "b": 4})
    before = snapshot(src)
    result = split_folder(src, tmp_path / "dst", group_pattern=UCF_GROUP)
    assert result.placed == {"hard link": 24}
    for path in (tmp_path / "dst").rglob("*.avi"):
        original = src / path.parent.name / path.name
        assert os.path.samefile(path, original) and not path.is_symlink()
    assert snapshot(src) == before


def test_symbolic_links_then_copies_where_hard_links_fail(tmp_path, monkeypatch):
    src = make_source(tmp_path / "src", {"a": 3, "b": 3})
    before = snapshot(src)

    def no_link(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    result = split_folder(src, tmp_path / "symlinked", group_pattern=UCF_GROUP)
    assert result.placed == {"symbolic link": 18}
    files = list((tmp_path / "symlinked").rglob("*.avi"))
    assert all(p.is_symlink() and p.resolve() == (src / p.parent.name / p.name).resolve() for p in files)

    monkeypatch.setattr(Path, "symlink_to", no_link)
    result = split_folder(src, tmp_path / "copied", group_pattern=UCF_GROUP)
    assert result.placed == {"copy": 18}
    files = list((tmp_path / "copied").rglob("*.avi"))
    assert all(not p.is_symlink() and not os.path.samefile(p, src / p.parent.name / p.name) for p in files)
    assert all(p.read_bytes() == (src / p.parent.name / p.name).read_bytes() for p in files)
    assert snapshot(src) == before


def test_a_class_with_too_few_groups_is_refused_by_name(tmp_path):
    src = make_source(tmp_path / "src", {"plenty": 10, "scarce": 2})
    with pytest.raises(SplitError, match=r"scarce \(2 groups\)") as error:
        split_folder(src, tmp_path / "dst", val=0.2, test=0.1, group_pattern=UCF_GROUP)
    assert "plenty" not in str(error.value)
    assert not (tmp_path / "dst").exists()  # nothing half-written
    split_folder(src, tmp_path / "dst", val=0.2, test=0, group_pattern=UCF_GROUP)  # two splits fit


def test_a_non_empty_destination_is_refused_and_kept(tmp_path):
    src = make_source(tmp_path / "src", {"a": 3, "b": 3})
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "mine.txt").write_text("keep me")
    with pytest.raises(SplitError, match="not empty"):
        split_folder(src, tmp_path / "dst")
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["mine.txt"]
    with pytest.raises(SplitError, match="inside"):
        split_folder(src, src / "split")


def test_bad_shares_and_sources_are_refused(tmp_path):
    src = make_source(tmp_path / "src", {"a": 3, "b": 3})
    with pytest.raises(SplitError, match="leave some for training"):
        split_folder(src, tmp_path / "dst", val=0.6, test=0.4)
    with pytest.raises(SplitError, match="not a folder"):
        split_folder(tmp_path / "missing", tmp_path / "dst")
    split_folder(src, tmp_path / "done", val=0.2, test=0)
    with pytest.raises(SplitError, match="split already"):
        split_folder(tmp_path / "done", tmp_path / "again")


def test_command_prints_counts_and_link_kind_and_the_result_trains(small_dataset, tmp_path, capsys):
    """The self-made set's training videos (6 classes of 4) split into a layout the data module reads."""
    dst = tmp_path / "mine"
    assert split.main([str(small_dataset / "train"), str(dst), "--val", "0.25", "--test", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "growing" in out and "total" in out and "24 hard links" in out
    dataset = load_dataset(dst)
    assert len(dataset.classes) == 6 and len(dataset.train) == 12 and len(dataset.val) == 6
    assert sorted(p.parent.name for p in (dst / "test").rglob("*.mp4")) == sorted(dataset.classes)
    assert "not videos" not in out
    source = make_source(tmp_path / "mine_src", {"a": 3, "b": 3})
    assert split.main([str(source), str(tmp_path / "mine2"), "--group-pattern", UCF_GROUP, "--test", "0"]) == 0
    assert f"left out 2 files that are not videos (.mp4/.webm/.mkv/.avi): {source / 'a' / 'notes.txt'}" in (
        capsys.readouterr().out
    )
    assert split.main([str(small_dataset / "train"), str(dst)]) == 2
    assert "not empty" in capsys.readouterr().err
