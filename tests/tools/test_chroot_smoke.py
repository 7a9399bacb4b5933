"""tools/chroot_smoke.py: the verdicts it draws from other programs' output."""

from __future__ import annotations

from pathlib import Path

import pytest

import chroot_smoke
from chroot_smoke import Failed


def test_static_linking_is_what_file_and_ldd_say():
    messages = chroot_smoke.static_linking(
        "ELF 64-bit LSB pie executable, x86-64, static-pie linked, stripped", "\tnot a dynamic executable\n"
    )
    assert messages == [
        "file: ELF 64-bit LSB pie executable, x86-64, static-pie linked, stripped",
        "ldd: not a dynamic executable",
    ]
    chroot_smoke.static_linking("ELF 64-bit LSB executable, statically linked", "statically linked")


@pytest.mark.parametrize(
    ("file_output", "ldd_output", "why"),
    [
        ("ELF 64-bit LSB pie executable, dynamically linked", "not a dynamic executable", "file says"),
        ("ELF 64-bit, static-pie linked", "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6", "ldd lists"),
    ],
)
def test_a_dynamic_binary_fails(file_output, ldd_output, why):
    with pytest.raises(Failed, match=why):
        chroot_smoke.static_linking(file_output, ldd_output)


def test_the_jail_command_runs_the_binary_as_the_runtime_uid_with_only_the_given_environment():
    command = chroot_smoke.jail_command(
        "/usr/sbin/chroot", Path("/tmp/j"), {"API_PORT": "1", "REDIS_HOST": ""}, ["serve"]
    )
    assert command == [
        "env", "-i", "API_PORT=1", "REDIS_HOST=",
        "/usr/sbin/chroot", "--userspec=65532:65532", "--groups=65532", "/tmp/j", "/gravity-bff", "serve",
    ]  # fmt: skip


def test_process_uids_come_from_the_uid_line():
    status = "Name:\tgravity-bff\nUmask:\t0022\nUid:\t65532\t65532\t65532\t65532\nGid:\t65532\t65532\t65532\t65532\n"
    assert chroot_smoke.process_uids(status) == [65532] * 4
    with pytest.raises(Failed):
        chroot_smoke.process_uids("Name:\tx\n")


def test_health_must_be_the_json_status_ok():
    assert chroot_smoke.is_health_ok("application/json", b'{"status":"ok"}')
    assert chroot_smoke.is_health_ok("application/json; charset=utf-8", b'{ "status": "ok" }\n')
    assert not chroot_smoke.is_health_ok("text/plain", b'{"status":"ok"}')
    assert not chroot_smoke.is_health_ok("application/json", b'{"status":"degraded"}')
    assert not chroot_smoke.is_health_ok("application/json", b"ok")


def test_one_line_means_exactly_one_terminated_line():
    assert chroot_smoke.one_line("API_PORT: not a port\n")
    assert not chroot_smoke.one_line("")
    assert not chroot_smoke.one_line("no newline")
    assert not chroot_smoke.one_line("one\ntwo\n")


def test_ready_waits_for_keys_only_as_a_503_naming_them():
    assert chroot_smoke.waits_for_keys(503, b'{"status":503,"postgres":"ok","redis":"disabled","auth":"no_keys"}')
    assert not chroot_smoke.waits_for_keys(200, b'{"status":"ready","auth":"ok"}')
    assert not chroot_smoke.waits_for_keys(503, b'{"postgres":"down","auth":"ok"}')
    assert not chroot_smoke.waits_for_keys(503, b"not json")
    assert not chroot_smoke.waits_for_keys(503, b"[]")
