//! A function's git repository (`DATA_DIR/builds/NAME/repo.git`, bare),
//! which `git push` reaches through the admin listener. Made on the first
//! push with git's own `git init`, it takes pushes over smart HTTP
//! (`http.receivepack`), collects its garbage after pushes
//! (`receive.autogc`), and has one hook: `pre-receive` runs the host's
//! program with [`HOOK_COMMAND`], which builds the pushed commit of the
//! deploy branch and deploys it before the branch moves (a failed build
//! rejects the push).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hidden subcommand of the host's program that the `pre-receive`
/// hook runs (`wisp __git-hook`).
pub const HOOK_COMMAND: &str = "__git-hook";

/// The repository of the function whose build directory is `top`, made
/// (with its hook calling `program`) if it does not exist yet. Blocking.
pub(crate) fn ensure(top: &Path, program: &Path) -> Result<PathBuf, String> {
    let repo = top.join("repo.git");
    if !repo.join("HEAD").is_file() {
        std::fs::create_dir_all(top)
            .map_err(|e| format!("making {} failed: {e}", top.display()))?;
        let made = Command::new("git")
            .args(["init", "--bare", "--quiet", "--initial-branch=main"])
            .arg(&repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .map_err(|e| format!("running git failed: {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "git init failed: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ));
        }
        for (key, value) in [
            ("http.receivepack", "true"),
            ("receive.autogc", "true"),
            ("receive.fsckObjects", "true"),
            ("core.hooksPath", "hooks"),
        ] {
            let set = Command::new("git")
                .arg("--git-dir")
                .arg(&repo)
                .args(["config", key, value])
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .status()
                .map_err(|e| format!("running git failed: {e}"))?;
            if !set.success() {
                return Err(format!("git config {key} failed"));
            }
        }
    }
    // Written each time: the host's program may have moved since.
    let hook = repo.join("hooks/pre-receive");
    let script = format!(
        "#!/bin/sh\nexec '{}' {HOOK_COMMAND}\n",
        program.display().to_string().replace('\'', "'\\''")
    );
    if std::fs::read_to_string(&hook).ok().as_deref() != Some(script.as_str()) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(repo.join("hooks"))
            .map_err(|e| format!("making the hooks directory failed: {e}"))?;
        let temp = repo.join("hooks/pre-receive.tmp");
        std::fs::write(&temp, script)
            .and_then(|()| std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)))
            .and_then(|()| std::fs::rename(&temp, &hook))
            .map_err(|e| format!("writing the pre-receive hook failed: {e}"))?;
    }
    Ok(repo)
}

/// Bytes the entries under `dir` take on disk (allocated blocks of every
/// file, directory and link, none followed; at least 512 bytes each, so
/// millions of empty files count too). A subtree that cannot be read (a
/// path deeper than the system allows, say) counts as `u64::MAX`: a build
/// cannot hide bytes from the weighing by hiding them from `read_dir`.
pub(crate) fn size_of(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(_) => return u64::MAX,
    };
    let mut total = 0u64;
    for entry in entries {
        let Ok(entry) = entry else {
            return u64::MAX;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        total = total.saturating_add((meta.blocks() * 512).max(512));
        if meta.is_dir() {
            total = total.saturating_add(size_of(&entry.path()));
        }
    }
    total
}
