//! Control groups for guest workers: each worker is put in its own memory
//! and pids group (beneath the front's own group, in `wisp-PID/worker-PID`)
//! with a cap on the memory it may hold and the threads it may run, so an
//! attacker who left the wasm sandbox cannot exhaust the machine's memory
//! or processes, only its own worker's. The memory group's end by the
//! kernel's out-of-memory killer is told apart from other kills.
//!
//! Where each controller lives is read from `/proc/self/cgroup` and
//! `/proc/self/mountinfo`: a cgroup v1 hierarchy of that controller, or the
//! v2 hierarchy when the front's group delegates it (`cgroup.subtree_control`).
//! A controller the host cannot use (no hierarchy has it, or the front may
//! not create groups in it: not root) is skipped with one logged line.

use std::path::{Path, PathBuf};

/// One controller's groups.
#[derive(Debug)]
struct Controller {
    name: &'static str,
    /// `wisp-PID` beneath the front's own group.
    parent: PathBuf,
    /// The file that caps a worker's group.
    cap_file: &'static str,
    /// In the v2 hierarchy (else a v1 one).
    v2: bool,
}

/// The workers' control groups.
#[derive(Debug)]
pub(crate) struct WorkerGroups {
    controllers: Vec<Controller>,
    /// Each worker's pids cap.
    threads: u64,
}

impl WorkerGroups {
    /// Groups capping each worker's memory and its tasks (at `threads`), in
    /// the controllers the host can use; logs one line per controller it
    /// cannot.
    pub(crate) fn create(threads: u64) -> WorkerGroups {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let wanted = [
            ("memory", V1_MEMORY_LIMIT, V2_MEMORY_LIMIT),
            ("pids", "pids.max", "pids.max"),
        ];
        let mut controllers = Vec::new();
        for (name, v1_file, v2_file) in wanted {
            let found = own_group(&cgroups, &mounts, name).and_then(|(dir, v2)| {
                remove_stale(&dir);
                let parent = dir.join(format!("wisp-{}", std::process::id()));
                match std::fs::create_dir(&parent) {
                    Ok(()) => Ok((parent, v2)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((parent, v2)),
                    Err(e) => Err(format!("creating `{}` failed: {e}", parent.display())),
                }
            });
            match found {
                Ok((parent, v2)) => controllers.push(Controller {
                    name,
                    parent,
                    cap_file: if v2 { v2_file } else { v1_file },
                    v2,
                }),
                Err(why) => tracing::warn!(
                    "guest workers get no {name} control group (its limit is not applied): {why}"
                ),
            }
        }
        WorkerGroups {
            controllers,
            threads,
        }
    }

    /// Puts process `pid` (a worker, not yet running guest code) in a
    /// group of its own in each controller, capped at `memory` bytes and
    /// the pool's threads.
    pub(crate) fn enter(&self, pid: u32, memory: u64) -> Result<(), String> {
        for controller in &self.controllers {
            let group = controller.group(pid);
            let cap = if controller.name == "memory" {
                memory
            } else {
                self.threads
            };
            std::fs::create_dir(&group)
                .and_then(|()| std::fs::write(group.join(controller.cap_file), cap.to_string()))
                .and_then(|()| controller.keep_from_swap(&group, cap))
                .and_then(|()| std::fs::write(group.join("cgroup.procs"), pid.to_string()))
                .map_err(|e| {
                    let _ = std::fs::remove_dir(&group);
                    format!(
                        "putting it in its {} control group `{}` failed: {e}",
                        controller.name,
                        group.display()
                    )
                })?;
        }
        Ok(())
    }

    /// Lowers worker `pid`'s memory cap to `memory` bytes.
    pub(crate) fn cap_memory(&self, pid: u32, memory: u64) -> Result<(), String> {
        for controller in self.controllers.iter().filter(|c| c.name == "memory") {
            let group = controller.group(pid);
            std::fs::write(group.join(controller.cap_file), memory.to_string())
                .and_then(|()| controller.keep_from_swap(&group, memory))
                .map_err(|e| {
                    format!(
                        "capping its memory control group `{}` failed: {e}",
                        group.display()
                    )
                })?;
        }
        Ok(())
    }

    /// Whether the kernel killed worker `pid` for its memory group's cap.
    pub(crate) fn killed_for_memory(&self, pid: u32) -> bool {
        self.controllers
            .iter()
            .filter(|controller| controller.name == "memory")
            .any(|controller| {
                // Both versions count kills as a line `oom_kill N`.
                let file = if controller.v2 {
                    "memory.events"
                } else {
                    "memory.oom_control"
                };
                let events =
                    std::fs::read_to_string(controller.group(pid).join(file)).unwrap_or_default();
                events.lines().any(|line| {
                    line.strip_prefix("oom_kill ")
                        .is_some_and(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
                })
            })
    }

    /// Removes worker `pid`'s groups (once it has ended).
    pub(crate) fn leave(&self, pid: u32) {
        for controller in &self.controllers {
            let _ = std::fs::remove_dir(controller.group(pid));
        }
    }
}

impl Controller {
    fn group(&self, pid: u32) -> PathBuf {
        self.parent.join(format!("worker-{pid}"))
    }

    /// Keeps a memory group capped at `cap` bytes from swapping past its
    /// cap, where the kernel accounts swap (the file exists).
    fn keep_from_swap(&self, group: &Path, cap: u64) -> std::io::Result<()> {
        let (file, value) = match (self.name, self.v2) {
            ("memory", true) => ("memory.swap.max", 0),
            ("memory", false) => ("memory.memsw.limit_in_bytes", cap),
            _ => return Ok(()),
        };
        let file = group.join(file);
        if file.exists() {
            std::fs::write(file, value.to_string())
        } else {
            Ok(())
        }
    }
}

impl Drop for WorkerGroups {
    fn drop(&mut self) {
        for controller in &self.controllers {
            let _ = std::fs::remove_dir(&controller.parent);
        }
    }
}

/// Removes the groups beneath `dir` that fronts no longer running left
/// (killed before they could remove them).
fn remove_stale(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let front = name.to_str().and_then(|n| n.strip_prefix("wisp-"));
        if front.is_none_or(|pid| Path::new("/proc").join(pid).exists()) {
            continue;
        }
        for worker in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(worker.path());
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// A v1 memory group's cap.
const V1_MEMORY_LIMIT: &str = "memory.limit_in_bytes";
/// A v2 group's memory cap.
const V2_MEMORY_LIMIT: &str = "memory.max";

/// The directory of this process's own group in the hierarchy that has
/// `controller`, and whether it is the v2 one.
fn own_group(cgroups: &str, mounts: &str, controller: &str) -> Result<(PathBuf, bool), String> {
    // v1: a line `ID:memory:/path`; v2: `0::/path`.
    let v1 = cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
        names.split(',').any(|n| n == controller).then_some(path)
    });
    if let Some(path) = v1 {
        let (root, mount) = mount_of(mounts, |fstype, options| {
            fstype == "cgroup" && options.split(',').any(|o| o == controller)
        })
        .ok_or("its cgroup v1 hierarchy is not mounted here")?;
        return Ok((beneath(&mount, &root, path), false));
    }
    let path = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup hierarchy has it")?;
    let (root, mount) = mount_of(mounts, |fstype, _| fstype == "cgroup2")
        .ok_or("no cgroup hierarchy has it, and cgroup v2 is not mounted here")?;
    let dir = beneath(&mount, &root, path);
    let delegated = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    if !delegated.split_whitespace().any(|c| c == controller) {
        return Err(format!(
            "no cgroup v1 hierarchy has it, and the front's cgroup v2 group `{}` does not delegate it",
            dir.display()
        ));
    }
    Ok((dir, true))
}

/// The root and mount point of the first mount in `mounts` (the text of
/// `/proc/self/mountinfo`) whose file system type and super options match.
fn mount_of(mounts: &str, matches: impl Fn(&str, &str) -> bool) -> Option<(String, PathBuf)> {
    mounts.lines().find_map(|line| {
        let (mine, theirs) = line.split_once(" - ")?;
        let mine: Vec<&str> = mine.split(' ').collect();
        let theirs: Vec<&str> = theirs.split(' ').collect();
        let (root, point) = (mine.get(3)?, mine.get(4)?);
        let (fstype, options) = (theirs.first()?, theirs.get(2)?);
        matches(fstype, options).then(|| (unescape(root), PathBuf::from(unescape(point))))
    })
}

/// `path` (a group as `/proc/self/cgroup` names it) in a hierarchy mounted
/// at `mount` whose mount shows the group `root`.
fn beneath(mount: &Path, root: &str, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(root)
        .unwrap_or(path)
        .trim_start_matches('/');
    mount.join(relative)
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 25 0:28 /ctr /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";

    #[test]
    fn a_v1_controller_is_found_beneath_its_mount() {
        let cgroups = "4:memory:/process_api/abc\n8:pids:/\n0::/\n";
        assert_eq!(
            own_group(cgroups, MOUNTS, "memory").unwrap(),
            (
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
                false
            )
        );
        assert_eq!(
            own_group(cgroups, MOUNTS, "pids").unwrap(),
            (PathBuf::from("/sys/fs/cgroup/pids"), false)
        );
    }

    #[test]
    fn a_controller_no_hierarchy_has_is_refused_with_why() {
        let cgroups = "4:memory:/\n0::/ctr/x\n";
        let why = own_group(cgroups, MOUNTS, "cpuset").unwrap_err();
        assert!(why.contains("does not delegate it"), "{why}");
        let why = own_group("4:memory:/\n", MOUNTS, "pids").unwrap_err();
        assert!(why.contains("no cgroup hierarchy has it"), "{why}");
    }

    #[test]
    fn a_container_root_is_stripped_and_escapes_undone() {
        let mounts =
            "40 1 0:30 /docker/x /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n";
        let (dir, v2) = own_group("4:memory:/docker/x/inner\n", mounts, "memory").unwrap();
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/my memory/inner"));
        assert!(!v2);
    }
}
