//! Crawling web sites into vector stores. The pages are fetched by the `crawler` component
//! (through the operator's grant, like any plugin request); this module holds what the host
//! decides for a crawl: which URLs a site's robots.txt allows (`robots`).

pub mod robots;
