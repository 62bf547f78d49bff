from __future__ import annotations

import ipaddress
from pathlib import Path

import pyarrow as pa
import pytest

from vigile.config import DEFAULT_CONFIG, Network, load_config
from vigile.errors import ConfigError


def test_default_config_file_parses_to_the_defaults(tmp_path: Path):
    path = tmp_path / "vigile.toml"
    path.write_text(DEFAULT_CONFIG)
    cfg = load_config(path)
    assert cfg.network == Network()
    assert cfg.window_hours == 24


def test_internal_mask_v4_v6_and_garbage():
    net = Network(
        internal=(ipaddress.ip_network("64.225.56.201/32"), ipaddress.ip_network("fd00::/8"))
    )
    arr = pa.array(["64.225.56.201", "73.54.23.243", "fd00::1", "not-an-ip", None])
    assert net.internal_mask(arr).tolist() == [True, False, True, False, False]
    assert Network().is_internal("fe80::1%eth0")


def test_sections_of_plug_ins_are_kept(tmp_path: Path):
    """A section vigile does not know, and not close to one it does, is a plug-in's."""
    path = tmp_path / "v.toml"
    path.write_text('[my_plugin]\nx = 1\n[hosts."fe80::1"]\nrole = "printer"\n')
    cfg = load_config(path)
    assert cfg.section("my_plugin") == {"x": 1} and cfg.hosts["fe80::1"].role == "printer"


def test_hosts_and_sections(tmp_path: Path):
    path = tmp_path / "v.toml"
    path.write_text(
        '[network]\ninternal=["10.0.0.0/8"]\n[hosts."10.0.0.25"]\nname="mail01"\n'
        'role="mail"\n[vault]\nroot="/x"\n'
    )
    cfg = load_config(path)
    assert cfg.hosts["10.0.0.25"].role == "mail"
    assert cfg.section("vault") == {"root": "/x"}


@pytest.mark.parametrize(
    "text, message",
    [
        ('[network]\ninternal = ["10.0.0.0/33"]', "is not an IP network"),
        ("[network\n", "v.toml"),
        ('[network]\ninternal = "10.0.0.0/8"', "must be a list"),
        # A misspelt section or key would be ignored: the defaults would silently apply.
        (
            '[netwrok]\ninternal = ["10.0.0.0/8"]',
            r"\[netwrok\] is unknown; did you mean 'net",
        ),
        (
            '[network]\ninternals = ["10.0.0.0/8"]',
            "internals is unknown; did you mean 'in",
        ),
        ('[hosts."10.0.0.5"]\nrole = "mailserver"', "role 'mailserver': use one of server, mail"),
        ('[hosts."10.0.0.300"]\nrole = "mail"', "'10.0.0.300' is not an IP address"),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path: Path, text: str, message: str):
    path = tmp_path / "v.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
