"""Split a folder of your own videos, one sub-folder per class, into train/, val/ and test/.

    python -m video_processing.split SRC DST [--val 0.2] [--test 0.1] [--group-pattern REGEX] [--seed 0]

SRC/<class>/<video> becomes DST/{train,val,test}/<class>/<video>, the class-folder layout training reads. The
shares hold per class. Clips whose file names share a --group-pattern match (its first group, else the whole
match) stay in one split: for UCF101, `_g(\\d+)_` keeps each person and scene together. A clip that matches
nothing is a group of its own. The same --seed gives the same split. SRC is not touched: DST holds hard links to
its files where the file system allows, else symbolic links, else copies, and the command says which. DST must be
new or empty; a class with fewer groups than the splits asked for is refused, by name.
"""

from __future__ import annotations

import argparse
import sys

from video_processing.data.layouts import VIDEO_EXTENSIONS
from video_processing.data.splits import SplitError, split_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of class folders: SRC/<class>/<video>")
    parser.add_argument("dst", help="new or empty folder for train/, val/ and test/")
    parser.add_argument("--val", type=float, default=0.2, help="share of each class's clips for validation")
    parser.add_argument("--test", type=float, default=0.1, help="share of each class's clips for test (0: none)")
    parser.add_argument("--group-pattern", help=r"regex on file names; clips with the same match stay together")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same split")
    args = parser.parse_args(argv)
    try:
        result = split_folder(args.src, args.dst, args.val, args.test, args.group_pattern, args.seed)
    except SplitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.table())
    if result.skipped:
        names = ", ".join(str(p) for p in result.skipped[:10]) + (" ..." if len(result.skipped) > 10 else "")
        print(f"left out {len(result.skipped)} files that are not videos ({'/'.join(VIDEO_EXTENSIONS)}): {names}")
    if result.ungrouped and args.group_pattern:
        print(f"{result.ungrouped} clips match no --group-pattern: each is a group of its own")
    print(f"{args.dst}: {result.placement()} to the files of {args.src} (the source is unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
