"""The command line and the README stay in step with the settings table."""
import socket
from pathlib import Path

from click.testing import CliRunner

from server.cli import main
from server.settings import SETTINGS, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_setting():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert setting.flag in result.output


def test_readme_configuration_table_is_current():
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_bad_flag_is_a_usage_error():
    result = CliRunner().invoke(main, ["--device", "tpu"])
    assert result.exit_code == 2 and "tpu" in result.output


def test_busy_port_is_refused_with_a_clear_message():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["--port", str(port), "--async-mode", "threading"])
    assert result.exit_code != 0 and "already running" in result.output
