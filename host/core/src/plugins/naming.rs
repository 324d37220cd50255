//! Names plugin tools are offered to the model under: their own, or `<plugin id>__<tool>` when
//! they collide with a client function or another plugin's tool.

use super::*;

/// A plugin tool as offered to the model: the function name it is exposed under, and what it
/// calls.
pub struct OfferedTool {
    pub exposed_name: String,
    pub plugin: Arc<Plugin>,
    pub spec: ToolSpec,
}

impl PluginHost {
    /// The tools of the enabled plugins, named for the model. A tool keeps its own name unless
    /// that name is taken by a client `function` tool or another enabled plugin's tool; then
    /// every colliding plugin tool is exposed as `<plugin id>__<tool name>`.
    pub fn offered_tools(
        &self,
        plugin_ids: &[String],
        client_functions: &[String],
    ) -> Vec<OfferedTool> {
        let tools: Vec<(Arc<Plugin>, ToolSpec)> = plugin_ids
            .iter()
            .filter_map(|id| self.get(id))
            .flat_map(|p| {
                p.tools
                    .iter()
                    .map(|t| (p.clone(), t.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let pairs: Vec<(&str, &str)> = tools
            .iter()
            .map(|(p, t)| (p.manifest.id.as_str(), t.name.as_str()))
            .collect();
        let names = exposed_names(&pairs, client_functions);
        tools
            .into_iter()
            .zip(names)
            .map(|((plugin, spec), exposed_name)| OfferedTool {
                exposed_name,
                plugin,
                spec,
            })
            .collect()
    }
}

/// Names for `(plugin id, tool name)` pairs that are unique among themselves and `reserved`.
pub(crate) fn exposed_names(tools: &[(&str, &str)], reserved: &[String]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, name) in tools {
        *count.entry(name).or_default() += 1;
    }
    let keeps_name = |name: &str| count[name] == 1 && !reserved.iter().any(|r| r == name);
    // Names kept as they are first, so a prefixed name never takes one of them; then every
    // prefixed name, made unique against everything taken so far (a client function or a
    // plugin's own tool may be called `a__b` too).
    let mut taken: std::collections::HashSet<String> = reserved.iter().cloned().collect();
    taken.extend(
        tools
            .iter()
            .filter(|(_, name)| keeps_name(name))
            .map(|(_, name)| name.to_string()),
    );
    tools
        .iter()
        .map(|(plugin, name)| {
            if keeps_name(name) {
                return name.to_string();
            }
            let prefixed = format!("{plugin}__{name}");
            let mut candidate = prefixed.clone();
            let mut attempt = 0u32;
            // Function names are capped at 64 characters: keep a recognisable head and a hash.
            while candidate.len() > 64 || taken.contains(&candidate) {
                // The first hash is the one names have always had (runs in flight use them).
                let seed = match attempt {
                    0 => prefixed.clone(),
                    n => format!("{prefixed}#{n}"),
                };
                let h = super::registry::digest(seed.as_bytes());
                let head: String = prefixed.chars().take(47).collect();
                candidate = format!("{head}_{}", &h[..16]);
                attempt += 1;
            }
            taken.insert(candidate.clone());
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::exposed_names;

    #[test]
    fn colliding_tool_names_get_their_plugin_prefix() {
        let tools = [
            ("calculator", "calculate"),
            ("weather", "current_weather"),
            ("maps", "current_weather"),
        ];
        let names = exposed_names(&tools, &["calculate".to_string()]);
        assert_eq!(
            names,
            [
                "calculator__calculate",
                "weather__current_weather",
                "maps__current_weather"
            ]
        );
        assert_eq!(exposed_names(&[("a", "x")], &[]), ["x"]);
        // A prefixed name never takes a name already in use, a client's or a plugin's own.
        let names = exposed_names(
            &[("a", "b"), ("c", "b"), ("x", "a__b")],
            &["c__b".to_string()],
        );
        assert_eq!(names[2], "a__b");
        assert!(
            names[0].starts_with("a__b_") && names[0].len() == 5 + 16,
            "{names:?}"
        );
        assert!(names[1].starts_with("c__b_"), "{names:?}");
        let long = "p".repeat(40);
        let n = &exposed_names(&[(&long, &"t".repeat(40)), ("b", &"t".repeat(40))], &[])[0];
        assert!(n.len() <= 64 && n.starts_with("pppp"), "{n}");
    }
}
