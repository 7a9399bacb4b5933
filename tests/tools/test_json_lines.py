"""tools/json_lines.py: what counts as a log line."""

from __future__ import annotations

import json_lines


def test_only_json_objects_pass():
    lines = ['{"level":"info","msg":"up"}\n', "[1, 2]\n", "plain text\n", "\n", '{"a": 1}', '"a string"\n', "{broken\n"]
    assert [n for n, _ in json_lines.bad_lines(lines)] == [2, 3, 4, 6, 7]


def test_main_reports_each_bad_line_and_fails(tmp_path, capsys):
    good, bad = tmp_path / "stdout", tmp_path / "stderr"
    good.write_text('{"a":1}\n{"b":2}\n', encoding="utf-8")
    bad.write_text('{"a":1}\npanicked\n', encoding="utf-8")
    assert json_lines.main([str(good)]) == 0
    assert json_lines.main([str(good), str(bad)]) == 1
    assert f"{bad}:2 is not a JSON object: 'panicked\\n'" in capsys.readouterr().err
