<%@ Page Language="C#" %> odd page
