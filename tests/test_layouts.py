import csv
import logging
import shutil

import pytest

from video_processing.data.layouts import LayoutError, detect_layout, kinetics_clip_name, load_dataset
from video_processing.synthetic import CLASSES

# Kinetics labels carry spaces, parentheses, apostrophes and commas (quoted in the CSV).
KINETICS_LABELS = [
    "passing American football (in game)",
    "massaging person's head",
    "dying hair",
    "tying bow tie",
]
COMMA_LABEL = "sword fighting, fencing"


def test_class_folders_layout(small_dataset, caplog):
    (small_dataset / "train" / CLASSES[0] / "notes.txt").write_text("not a video")
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(small_dataset)
    (small_dataset / "train" / CLASSES[0] / "notes.txt").unlink()
    assert dataset.layout == "class_folders"
    assert dataset.classes == sorted(CLASSES)
    assert len(dataset.train) == 4 * len(CLASSES) and len(dataset.val) == 2 * len(CLASSES)
    assert all(r.path.suffix == ".mp4" and dataset.classes[r.label] == r.path.parent.name for r in dataset.train)
    assert "notes.txt" in caplog.text and "ignored 1 files" in caplog.text


def _kinetics_copy(small_dataset, tmp_path, labels):
    """Rearrange the small set into the official Kinetics release layout, one class per label."""
    root = tmp_path / "kinetics"
    (root / "annotations").mkdir(parents=True)
    for split, csv_name in (("train", "train.csv"), ("val", "validate.csv")):
        (root / split).mkdir()
        with open(root / "annotations" / csv_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for class_index, (class_name, label) in enumerate(zip(sorted(CLASSES), labels, strict=True)):
                for i, video in enumerate(sorted((small_dataset / split / class_name).iterdir())):
                    youtube_id = f"c{class_index}v{i}-x_Y"
                    writer.writerow([label, youtube_id, 10 * i, 10 * i + 10, split])
                    shutil.copy(video, root / split / kinetics_clip_name(youtube_id, 10 * i, 10 * i + 10))
    return root


def test_kinetics_release_layout(small_dataset, tmp_path, caplog):
    labels = [*KINETICS_LABELS, COMMA_LABEL, "zumba"]
    root = _kinetics_copy(small_dataset, tmp_path, labels)
    (root / "train" / kinetics_clip_name("c5v0-x_Y", 0, 10)).unlink()  # a video gone from YouTube
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(root)
    assert dataset.layout == "kinetics_csv"
    assert dataset.classes == sorted(labels)
    assert COMMA_LABEL in dataset.classes
    assert len(dataset.train) == 4 * len(CLASSES) - 1
    assert "1 of 24 rows have no clip" in caplog.text
    # each clip keeps the label of its row: the class index is in its youtube id (c<index>v<i>-x_Y)
    assert all(dataset.classes[r.label] == labels[int(r.path.name[1])] for r in dataset.train + dataset.val)


def test_kinetics_unknown_validation_label(small_dataset, tmp_path):
    root = _kinetics_copy(small_dataset, tmp_path, [*KINETICS_LABELS, COMMA_LABEL, "zumba"])
    text = (root / "annotations" / "validate.csv").read_text().replace("zumba", "yodelling")
    (root / "annotations" / "validate.csv").write_text(text)
    with pytest.raises(LayoutError, match="'yodelling' does not occur in the training split"):
        load_dataset(root)


def test_pytorchvideo_csv_layout(small_dataset, tmp_path):
    classes = sorted(CLASSES)
    for split in ("train", "val"):
        lines = [f"{p} {classes.index(p.parent.name)}" for p in sorted((small_dataset / split).glob("*/*.mp4"))]
        lines.append(f"{split}/missing.mp4 0")  # listed but absent: counted, not fatal
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "pytorchvideo_csv"
    assert dataset.classes == [str(i) for i in range(len(CLASSES))]
    assert len(dataset.train) == 4 * len(CLASSES)
    assert {r.label for r in dataset.val} == set(range(len(CLASSES)))


def test_pytorchvideo_csv_bad_line(tmp_path):
    (tmp_path / "train.csv").write_text("a.mp4 zero\n")
    (tmp_path / "val.csv").write_text("")
    with pytest.raises(LayoutError, match=r"train.csv:1: expected '<path> <label index>'"):
        load_dataset(tmp_path)


def test_unknown_validation_class_folder(dataset_copy):
    (dataset_copy / "val" / "yodelling").mkdir()
    with pytest.raises(LayoutError, match="'yodelling' does not occur in the training split"):
        load_dataset(dataset_copy)


def test_no_layout_names_path_and_layouts(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(LayoutError) as error:
        detect_layout(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "class folders" in message and "Kinetics release" in message and "PyTorchVideo CSV" in message


def test_missing_data_path(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_a_test_split_is_read_in_each_layout_and_is_optional(small_dataset, tmp_path):
    """test/ class folders, the release's annotations/test.csv with clips in test/, test.csv: read as val is."""
    assert load_dataset(small_dataset).test == [] and load_dataset(small_dataset).splits() == ("train", "val")
    folders = shutil.copytree(small_dataset, tmp_path / "folders")
    shutil.copytree(folders / "val", folders / "test")
    kinetics = _kinetics_copy(small_dataset, tmp_path, [*KINETICS_LABELS, COMMA_LABEL, "zumba"])
    shutil.copytree(kinetics / "val", kinetics / "test")
    shutil.copy(kinetics / "annotations" / "validate.csv", kinetics / "annotations" / "test.csv")
    pytorchvideo = tmp_path / "csv"
    pytorchvideo.mkdir()
    classes = sorted(CLASSES)
    for split, folder in (("train", "train"), ("val", "val"), ("test", "val")):
        lines = [f"{p} {classes.index(p.parent.name)}" for p in sorted((small_dataset / folder).glob("*/*.mp4"))]
        (pytorchvideo / f"{split}.csv").write_text("\n".join(lines) + "\n")
    for root, test_folder in ((folders, folders / "test"), (kinetics, kinetics / "test"), (pytorchvideo, None)):
        layout = load_dataset(root)
        assert layout.splits() == ("train", "val", "test") and layout.split("test") == layout.test
        assert [r.label for r in layout.test] == [r.label for r in layout.val] and len(layout.test) == 12
        assert test_folder is None or all(
            r.path.parent == test_folder or r.path.parent.parent == test_folder for r in layout.test
        )


def test_an_unknown_test_label_is_refused_naming_it(dataset_copy):
    (dataset_copy / "test" / "yodelling").mkdir(parents=True)
    with pytest.raises(LayoutError, match="'yodelling' does not occur in the training split"):
        load_dataset(dataset_copy)
