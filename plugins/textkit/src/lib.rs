//! Text extraction shared by the built-in components that read markup: `web_retrieval` (web
//! pages) and `documents` (HTML files, and the XML inside office documents). A plain library,
//! compiled into each component, so the parsing runs in their sandboxes.

pub mod html;
pub mod xml;
