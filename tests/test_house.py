"""The house as built: which way imports run between the package's rooms, no cycles, few modules at the top.

The package's own imports are read from its source with `ast` (every import, at module level or inside a function),
so a change that runs an import the wrong way, closes a cycle or adds a dataset class fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "video_processing"
ROOMS = ("data", "models", "inference", "lessons")
# The front doors of the two sides (the brief's), and the command lines built on the core.
FRONT_DOORS = ("video_processing.kinetics_module", "video_processing.classification")
MAX_TOP_MODULES = 16
MAX_DATASET_CLASSES = 4


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = package_modules()


def imports_of(tree: ast.Module) -> set[str]:
    """The package's modules `tree` imports (`from video_processing.data import reads` names data.reads)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("video_processing")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("video_processing"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: imports_of(tree) - {name} for name, tree in MODULES.items()}


def room(module: str) -> str:
    """ "data", "models", "inference", "lessons", the front door's name, or "tool" for the other top modules."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ROOMS:
        return parts[1]
    if module in FRONT_DOORS:
        return parts[1]
    return "package" if module == "video_processing" else "tool"


def arrows(source_room: str) -> set[tuple[str, str]]:
    return {(m, i) for m, imported in GRAPH.items() if room(m) == source_room for i in imported}


def test_the_graph_reads_the_package():
    assert (
        "video_processing.data.sources" in GRAPH
        and "video_processing.data.reads" in GRAPH["video_processing.data.sources"]
    )


@pytest.mark.parametrize(
    ("source_room", "allowed"),
    [
        ("data", {"data"}),  # the data side never imports the model side, inference, lessons or tools
        ("models", {"models", "data"}),  # and from data only pure tensor code (below)
        ("kinetics_module", {"data"}),
        ("classification", {"models", "data"}),
        ("inference", {"inference", "models", "data", "kinetics_module", "classification"}),
    ],
)
def test_imports_run_one_way(source_room, allowed):
    wrong = {(m, i) for m, i in arrows(source_room) if room(i) not in allowed}
    assert not wrong, f"{source_room} imports {sorted(wrong)}"


def test_the_model_never_opens_a_file():
    """models/ imports from data/ only the transforms (tensors in, tensors out) and the downloader its weights come
    through: no decoding, no layouts."""
    data_imports = {i for _, i in arrows("models") if room(i) == "data"}
    assert data_imports <= {"video_processing.data.transforms", "video_processing.data.downloads"}


def test_nothing_in_the_core_imports_lessons_or_tools():
    core = ("data", "models", "inference", "kinetics_module", "classification")
    wrong = {(m, i) for r in core for m, i in arrows(r) if room(i) in ("lessons", "tool")}
    assert not wrong


def test_there_is_no_import_cycle():
    cycles = import_cycles(GRAPH)
    assert not cycles, f"import cycles: {cycles}"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from where the search met it)."""
    state, stack, cycles = {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_cycle_search_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_few_modules_at_the_top_and_four_rooms():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_MODULES, sorted(top)
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(ROOMS)


def dataset_classes() -> list[str]:
    """Classes that derive, directly or through the package's own classes, from a torch dataset (a base named
    ...Dataset), or whose name says they are one."""
    classes = {
        f"{name}.{node.name}": (node.name, {ast.unparse(b).split(".")[-1] for b in node.bases})
        for name, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    found = {
        key
        for key, (cls, bases) in classes.items()
        if cls.endswith("Dataset") or any(b.endswith("Dataset") for b in bases)
    }
    while True:  # through subclasses of the package's own dataset classes
        names = {classes[key][0] for key in found}
        more = {key for key, (_, bases) in classes.items() if bases & names} - found
        if not more:
            return sorted(found)
        found |= more


def test_at_most_four_dataset_classes():
    classes = dataset_classes()
    assert 1 <= len(classes) <= MAX_DATASET_CLASSES, classes


def test_the_readmes_package_map_lists_every_module_in_its_room():
    text = (PACKAGE.parent / "README.md").read_text()
    block = text.split("```\nvideo_processing/\n", 1)[1].split("```", 1)[0]
    listed, room_dir = set(), None
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if line.startswith("  ") and not line.startswith("   ") and name.endswith("/"):
            room_dir = name
        elif line.startswith("    ") and not line.startswith("     ") and name.endswith(".py"):
            listed.add(room_dir + name)
        elif line.startswith("  ") and not line.startswith("   ") and name.endswith(".py"):
            listed.add(name)
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert listed == modules
