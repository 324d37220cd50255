//! `assistants plugins …`: the plugin author's and operator's view of the plugin host — list
//! what loads, check a component against its manifest and grants, call one of its tools, run
//! its fixtures (`harness`), start a new plugin from a template (`templates`).

pub mod harness;
pub mod templates;

use anyhow::Context as _;

use crate::config::{FileConfig, PluginsAction};

/// `assistants plugins …`: the plugin author's and operator's view of the plugin host.
pub async fn command(
    action: PluginsAction,
    file: &FileConfig,
    configured: bool,
) -> anyhow::Result<()> {
    use assistants_core::plugins::manifest::{Grant, Manifest};
    use assistants_core::plugins::{error_text, PluginHost, PluginSettings};
    let mut settings = PluginSettings {
        dir: None,
        cache_dir: None,
        cache_key_file: None,
        grants: file.plugins.grants.clone(),
        instances: Some(16),
        memory_budget_mib: file.plugins.memory_budget_mib,
        caps: file.plugins.caps,
        reload_secs: Some(0),
    };
    let load_file = |path: &std::path::Path,
                     manifest: Option<std::path::PathBuf>|
     -> anyhow::Result<(Vec<u8>, String)> {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest_path = manifest.unwrap_or_else(|| path.with_extension("toml"));
        let manifest = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading the manifest {}", manifest_path.display()))?;
        Ok((wasm, manifest))
    };
    match action {
        PluginsAction::List { plugins_dir } => {
            settings.dir = plugins_dir.or_else(|| file.plugins.dir.clone());
            let host = PluginHost::load(&settings).await?;
            for p in host.list() {
                let info = p.info();
                println!(
                    "{} {} ({:?}{}) sha256:{}",
                    info.id,
                    info.version,
                    info.kind,
                    if info.builtin { ", built-in" } else { "" },
                    &info.digest[..16]
                );
                for t in &p.tools {
                    println!("    {} — {}", t.name, t.description);
                }
            }
            Ok(())
        }
        PluginsAction::Check {
            file: path,
            manifest,
        } => {
            use assistants_core::plugins::manifest::{requirements, sample_grant};
            let (wasm, manifest) = load_file(&path, manifest)?;
            let parsed = Manifest::parse(&manifest).context("invalid manifest")?;
            anyhow::ensure!(
                !assistants_core::plugins::BUILTIN_PLUGINS
                    .iter()
                    .any(|(stem, _, m)| *stem == parsed.id
                        || Manifest::parse(m).is_ok_and(|b| b.id == parsed.id)),
                "the id '{}' is a built-in plugin's: in a plugins directory this component would not load; choose another id",
                parsed.id
            );
            // Without an operator config, the component is checked as if granted everything it
            // asks for; with one, against that config's real grants.
            if !configured {
                settings
                    .grants
                    .insert(parsed.id.clone(), sample_grant(&parsed));
            }
            let host = PluginHost::load(&settings).await?;
            let plugin = host
                .prepare(&wasm, &manifest, &settings, false)
                .await
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            println!("{}", serde_json::to_string_pretty(&plugin.info())?);
            let needs = requirements(&parsed);
            if needs.is_empty() {
                println!("needs no grants");
            } else {
                println!("needs:");
                for line in needs {
                    println!("  - {line}");
                }
            }
            if configured {
                println!(
                    "ok: {} loads with the grants of this config",
                    plugin.manifest.id
                );
            } else {
                println!(
                    "ok: {} is a valid component; it loads once the operator grants the above (check with --config)",
                    plugin.manifest.id
                );
            }
            Ok(())
        }
        PluginsAction::Call {
            file: path,
            tool,
            args,
            manifest,
        } => {
            let host = PluginHost::load(&settings).await?;
            let plugin = match host.get(&path.to_string_lossy()) {
                Some(p) if !path.exists() => p,
                _ => {
                    let (wasm, manifest) = load_file(&path, manifest)?;
                    if !configured {
                        // The hosts it asks for (a caller of a plugin being written is its
                        // author), but no config values or secrets: those come with --config.
                        let parsed = Manifest::parse(&manifest).context("invalid manifest")?;
                        let hosts = parsed.network.hosts.iter().filter(|h| *h != "*");
                        settings.grants.insert(
                            parsed.id.clone(),
                            Grant {
                                hosts: hosts.cloned().collect(),
                                ..Grant::default()
                            },
                        );
                    }
                    std::sync::Arc::new(
                        host.prepare(&wasm, &manifest, &settings, false)
                            .await
                            .map_err(|e| {
                                if configured {
                                    anyhow::anyhow!("{e:#}")
                                } else {
                                    anyhow::anyhow!("{e:#} (pass --config with the plugin's grant, as the server would have it)")
                                }
                            })?,
                    )
                }
            };
            let ctx = assistants_core::plugins::bindings::CallContext {
                tool_call_id: assistants_core::model::ids::new_id(
                    assistants_core::model::ids::IdKind::ToolCall,
                ),
                run_id: None,
                thread_id: None,
                assistant_id: None,
                vector_store_ids: vec![],
                options_json: "{}".into(),
            };
            match host.invoke(&plugin, ctx, &tool, &args).await {
                Ok(out) => {
                    println!("{}", out.text);
                    Ok(())
                }
                Err(e) => anyhow::bail!("tool error: {}", error_text(&e)),
            }
        }
        PluginsAction::Test {
            file: path,
            fixtures,
            manifest,
        } => {
            let (wasm, manifest) = load_file(&path, manifest)?;
            let text = std::fs::read_to_string(&fixtures)
                .with_context(|| format!("reading {}", fixtures.display()))?;
            let fixtures = harness::Fixtures::parse(&text)
                .with_context(|| format!("invalid fixtures {}", fixtures.display()))?;
            let outcomes = harness::run(&wasm, &manifest, &fixtures).await?;
            let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
            for o in &outcomes {
                match &o.failure {
                    None => println!("ok   {}", o.name),
                    Some(why) => println!("FAIL {}: {why}", o.name),
                }
            }
            println!("{} passed, {failed} failed", outcomes.len() - failed);
            anyhow::ensure!(failed == 0, "{failed} of {} cases failed", outcomes.len());
            Ok(())
        }
        PluginsAction::New { name, lang, dir } => {
            let root = templates::create(&name, lang, &dir)?;
            println!("created {}", root.display());
            println!(
                "next: cd {} && ./build.sh && assistants plugins test {name}.wasm fixtures.toml",
                root.display()
            );
            Ok(())
        }
    }
}
