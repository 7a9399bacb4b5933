"""tools/import_graph.py: which imports count, and that a cycle is found and named."""

from __future__ import annotations

import import_graph


def write(root, files: dict[str, str]) -> None:
    for name, code in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")


def test_uses_groups_and_paths_count_but_comments_and_tests_do_not():
    code = (
        "use crate::config::Settings;\n"
        "use crate::{db, http::body};\n"
        "// crate::writes is only mentioned\n"
        "fn f() { crate::cache::lookup(); }\n"
        "#[cfg(test)]\nmod tests { use crate::server; }\n"
    )
    assert import_graph.imported_modules(code) == {"config", "db", "http", "cache"}


def test_a_cycle_through_a_submodule_is_reported_with_its_files(tmp_path, capsys):
    write(
        tmp_path,
        {
            "main.rs": "use crate::a::x;\n",
            "a.rs": "use crate::b::y;\n",
            "b/mod.rs": "mod inner;\n",
            "b/inner.rs": "use crate::a::x;\n",
            "c.rs": "use crate::a::x;\n",
        },
    )
    assert import_graph.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "a cycle among a, b" in err
    assert f"b -> a  ({tmp_path / 'b' / 'inner.rs'})" in err


def test_an_acyclic_graph_passes_and_is_listed_from_the_bottom_up(tmp_path, capsys):
    write(tmp_path, {"lib.rs": "", "a.rs": "use crate::b::y;\n", "b.rs": "use crate::c::z;\n", "c.rs": ""})
    assert import_graph.main([str(tmp_path)]) == 0
    assert "from the bottom up: c b a" in capsys.readouterr().out


def test_the_crate_has_no_cycle():
    edges, _ = import_graph.graph(import_graph.Path(__file__).resolve().parents[2] / "src")
    assert "cache" in edges and "handlers" in edges
    assert import_graph.cycles(edges) == []
