<%@ Page Language="C#" %> product page
