"""tools/code_size.py: what counts as a production line."""

from __future__ import annotations

import code_size


def test_a_file_counts_up_to_its_unit_test_module_without_trailing_blank_lines():
    text = "//! Docs.\n\nfn a() {}\n// why\n\n\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n"
    assert code_size.production_size(text) == code_size.Size(lines=4, comments=2, blank=1)
    assert code_size.production_size(text).code == 1


def test_cfg_test_on_anything_but_the_test_module_is_production_code():
    text = "#[cfg(test)]\nfn helper() {}\nfn b() {}\n#[cfg(test)]\npub(crate) mod tests {}\n"
    assert code_size.production_size(text) == code_size.Size(lines=3, comments=0, blank=0)


def test_a_file_without_tests_counts_whole():
    assert code_size.production_size("fn a() {}\nfn b() {}\n") == code_size.Size(lines=2, comments=0, blank=0)
