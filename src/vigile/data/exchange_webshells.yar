/*
  Web shell and ProxyLogon artefact signatures written for vigile.
  Patterns follow public descriptions: China Chopper one-liners (FireEye 2013 report,
  Volexity 2021-03-02), the CVE-2021-27065 OAB virtual directory dump with script in
  ExternalUrl/InternalUrl (Microsoft HAFNIUM blog), and commands run from request data.
*/

rule vigile_china_chopper_aspx
{
    meta:
        description = "China Chopper style one-liner: eval of request data with 'unsafe'"
        score = 95
    strings:
        $eval = /eval\s*\(\s*Request(\.Item)?\s*[\[\(]/ nocase
        $unsafe = "unsafe" nocase
    condition:
        filesize < 200KB and $eval and $unsafe
}

rule vigile_oab_vdir_dump_with_script
{
    meta:
        description = "OAB virtual directory settings written to disk with script in a URL"
        score = 95
    strings:
        $url1 = "ExternalUrl" nocase
        $url2 = "InternalUrl" nocase
        $script1 = /<script[^>]{0,80}runat\s*=\s*["']?server/ nocase
        $script2 = "<%@ Page Language" nocase
        $oab = "OAB" nocase
    condition:
        filesize < 64KB and $oab and any of ($url*) and any of ($script*)
}

rule vigile_aspx_command_exec
{
    meta:
        description = "Page that runs a process or script host with request data"
        score = 85
    strings:
        $req1 = "Request.Form" nocase
        $req2 = "Request.QueryString" nocase
        $req3 = /Request\s*\[/ nocase
        $exec1 = "Process.Start" nocase
        $exec2 = "ProcessStartInfo" nocase
        $exec3 = "WScript.Shell" nocase
        $exec4 = "cmd.exe" nocase
    condition:
        filesize < 500KB and any of ($req*) and any of ($exec*)
}

rule vigile_aspx_file_upload
{
    meta:
        description = "Small page that saves an uploaded file where the request says"
        score = 80
    strings:
        $files = /Request\.Files\s*\[/ nocase
        $save = ".SaveAs(" nocase
    condition:
        filesize < 4KB and $files and $save
}
