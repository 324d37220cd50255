//! robots.txt, as RFC 9309 reads it: the group for our user agent (the most specific product
//! token that matches, else `*`), its `allow` and `disallow` rules with `*` and `$`, the
//! longest matching rule deciding (`allow` on a tie), and the common `crawl-delay` extension.
//!
//! A crawl fetches a host's robots.txt once (through the crawler component, so the operator's
//! grant applies to it too) and asks [`Robots::allows`] for every URL of that host. A missing
//! file (4xx) allows everything; an unreachable one (5xx, network) disallows everything for
//! the crawl, as the RFC says, since the site's wishes are unknown.

/// The product token crawls send as user agent, matched against `user-agent` lines.
pub const AGENT: &str = "assistants-crawler";

/// Largest robots.txt read (the RFC asks for at least 500 KiB).
pub const MAX_BYTES: usize = 512 * 1024;

/// One group of the file: the user agents it names, its rules, its crawl delay.
#[derive(Default)]
struct Group {
    agents: Vec<String>,
    rules: Vec<(bool, String)>,
    crawl_delay: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Robots {
    /// (allow?, pattern), in file order.
    rules: Vec<(bool, String)>,
    /// Seconds between requests the site asked for, if it did.
    pub crawl_delay: Option<f64>,
    /// Nothing may be fetched (the file could not be read).
    deny_all: bool,
}

impl Robots {
    /// No robots.txt (it answered 4xx): everything is allowed.
    pub fn allow_all() -> Robots {
        Robots {
            rules: Vec::new(),
            crawl_delay: None,
            deny_all: false,
        }
    }

    /// The robots.txt could not be read (5xx or unreachable): nothing is allowed.
    pub fn deny_all() -> Robots {
        Robots {
            deny_all: true,
            ..Robots::allow_all()
        }
    }

    /// The rules of `text` for `agent` (a product token such as [`AGENT`]).
    pub fn parse(text: &str, agent: &str) -> Robots {
        let text = &text[..floor_boundary(text, MAX_BYTES)];
        let agent = agent.to_ascii_lowercase();
        let mut groups: Vec<Group> = Vec::new();
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push(Group::default());
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.agents.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        // An empty `disallow` allows everything: no rule.
                        if !value.is_empty() {
                            g.rules.push((key == "allow", value.to_string()));
                        }
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let (Some(g), Ok(d)) = (groups.last_mut(), value.parse::<f64>()) {
                        if d.is_finite() && d >= 0.0 {
                            g.crawl_delay = Some(d);
                        }
                    }
                }
                // Sitemaps and unknown keys neither start nor end a group's agent list.
                _ => {}
            }
        }
        // The groups naming the longest token that is a prefix of ours; else those of `*`.
        // Every group naming it counts (the RFC merges them).
        let best = groups
            .iter()
            .flat_map(|g| g.agents.iter())
            .filter(|a| *a != "*" && agent.starts_with(a.as_str()))
            .map(String::len)
            .max();
        let chosen = |g: &&Group| match best {
            Some(len) => g
                .agents
                .iter()
                .any(|a| a.len() == len && agent.starts_with(a.as_str())),
            None => g.agents.iter().any(|a| a == "*"),
        };
        let mut robots = Robots::allow_all();
        for g in groups.iter().filter(chosen) {
            robots.rules.extend(g.rules.iter().cloned());
            robots.crawl_delay = robots.crawl_delay.or(g.crawl_delay);
        }
        robots
    }

    /// Whether the file could not be read (so nothing is allowed, for now): unlike a rule,
    /// that says nothing about what the site wants kept.
    pub fn unreadable(&self) -> bool {
        self.deny_all
    }

    /// Whether the URL with this path and query (`/docs/a?x=1`) may be fetched.
    pub fn allows(&self, path_and_query: &str) -> bool {
        if self.deny_all {
            return false;
        }
        // robots.txt itself is always allowed.
        if path_and_query == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if pattern_matches(pattern, path_and_query) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Whether `pattern` (with `*` for any run of characters and a final `$` for the end) matches
/// the start of `path`. A crawl's include and exclude patterns use it over whole URLs.
pub(crate) fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let pieces: Vec<&str> = pattern.split('*').collect();
    let mut at = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            if !path.starts_with(piece) {
                return false;
            }
            at = piece.len();
            continue;
        }
        if i == pieces.len() - 1 && anchored {
            // The last piece must end the path, after what matched so far.
            return path.len() >= at + piece.len() && path[at..].ends_with(piece);
        }
        match path[at..].find(piece) {
            Some(found) => at += found + piece.len(),
            None => return false,
        }
    }
    !anchored || at == path.len()
}

/// The largest character boundary of `s` at or below `n`.
fn floor_boundary(s: &str, n: usize) -> usize {
    if n >= s.len() {
        return s.len();
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comments and blank lines are ignored
User-agent: *
Disallow: /private/
Disallow: /tmp
Allow: /private/public-*.html$
Crawl-delay: 2

User-agent: assistants-crawler
User-agent: other-bot
Disallow: /drafts/   # ours only
Allow: /drafts/published/
Crawl-delay: 0.5

User-agent: assistants
Disallow: /
";

    #[test]
    fn the_most_specific_group_applies_with_the_longest_rule_deciding() {
        let ours = Robots::parse(FILE, AGENT);
        assert_eq!(ours.crawl_delay, Some(0.5));
        assert!(!ours.allows("/drafts/x.html"));
        assert!(ours.allows("/drafts/published/x.html"), "longer allow wins");
        assert!(ours.allows("/private/x"), "the `*` group is not ours");
        // A shorter product token that is a prefix of ours loses to the longer one.
        let shorter = Robots::parse(FILE, "assistants");
        assert!(!shorter.allows("/anything"));

        let anyone = Robots::parse(FILE, "somebot");
        assert_eq!(anyone.crawl_delay, Some(2.0));
        assert!(!anyone.allows("/private/a.html"));
        assert!(
            anyone.allows("/private/public-a.html"),
            "wildcard and end anchor"
        );
        assert!(
            !anyone.allows("/private/public-a.html?x"),
            "$ anchors the end"
        );
        assert!(!anyone.allows("/tmp"));
        assert!(!anyone.allows("/tmpfile"), "a prefix rule");
        assert!(anyone.allows("/docs/"));
        assert!(anyone.allows("/robots.txt"));
    }

    #[test]
    fn missing_unreadable_and_odd_files() {
        assert!(Robots::allow_all().allows("/x"));
        assert!(!Robots::deny_all().allows("/x"));
        let empty_disallow = Robots::parse("User-agent: *\nDisallow:\n", AGENT);
        assert!(empty_disallow.allows("/x"));
        let no_groups = Robots::parse("Disallow: /\nSitemap: https://x/sitemap.xml", AGENT);
        assert!(
            no_groups.allows("/x"),
            "rules outside any group are ignored"
        );
        let tie = Robots::parse("User-agent: *\nDisallow: /a\nAllow: /a\n", AGENT);
        assert!(tie.allows("/a"), "allow wins a tie");
        let star = Robots::parse("User-agent: *\nDisallow: /*.pdf$\nDisallow: /x*y\n", AGENT);
        assert!(!star.allows("/docs/file.pdf"));
        assert!(star.allows("/docs/file.pdf.html"));
        assert!(!star.allows("/x-then-y/z"));
        assert!(star.allows("/x-none"));
    }
}
