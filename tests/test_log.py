from leftover.log import MAX_NAME, printable


def test_plain_names_are_unchanged():
    assert printable("python3") == "python3"


def test_control_characters_cannot_forge_a_log_line():
    shown = printable("x\n\x1b[31mroot\r")
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown
    assert shown == "x\\x0a\\x1b[31mroot\\x0d"


def test_backslash_is_escaped_so_escapes_stay_unambiguous():
    assert printable("a\\x0a") == "a\\\\x0a"


def test_undecodable_bytes_are_shown_as_bytes():
    assert printable("py\udcff") == "py\\xff"


def test_length_is_bounded():
    shown = printable("A" * 1000)
    assert len(shown) == MAX_NAME + 3 and shown.endswith("...")


def test_unicode_letters_stay_but_invisible_ones_are_escaped():
    assert printable("ñ\u202e") == "ñ\\u202e"


def test_unreachable_syslog_socket_sends_every_line_to_stderr(tmp_path, capsys):
    from leftover.log import Log

    log = Log(to_stderr=False, dev_log=str(tmp_path / "no-such-socket"))
    log.info("sent SIGTERM to pid=1")
    err = capsys.readouterr().err
    assert "no syslog at" in err and "logging to stderr instead" in err
    assert "leftover: info: sent SIGTERM to pid=1" in err
