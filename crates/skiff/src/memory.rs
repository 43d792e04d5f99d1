//! Keeping a long-running process's memory close to what it holds: glibc's arena cap.
//!
//! glibc's allocator gives threads that contend for memory arenas of their own, up to eight per
//! core, and gives freed memory back to the kernel only from the top of each arena. A member
//! that answered big lists kept that high-water mark in a dozen arenas for good (153-164 MiB
//! after five lists of 10,000 ConfigMaps, 104 MiB with two arenas; `skiff bench api`).
//! glibc reads its tunables only when a process starts, and this crate has no `unsafe` for
//! `mallopt`, so the process starts itself again, once, with the cap in `GLIBC_TUNABLES`,
//! before any thread exists. An operator's own `glibc.malloc.arena_max` is kept as it is.

/// The glibc tunable that caps arenas.
const ARENA_MAX: &str = "glibc.malloc.arena_max";

/// Arenas for a machine with `cores` cores: as many as cores, between 2 and 8.
pub fn arenas_for(cores: usize) -> usize {
    cores.clamp(2, 8)
}

/// `GLIBC_TUNABLES` with the arena cap added, or `None` when it already names one.
pub fn tunables_with_cap(current: Option<&str>, arenas: usize) -> Option<String> {
    match current {
        Some(v)
            if v.split(':')
                .any(|t| t.starts_with(&format!("{ARENA_MAX}="))) =>
        {
            None
        }
        Some(v) if !v.is_empty() => Some(format!("{v}:{ARENA_MAX}={arenas}")),
        _ => Some(format!("{ARENA_MAX}={arenas}")),
    }
}

/// Replaces the process image with the same program (`/proc/self/exe`: the same file even if
/// the path was replaced since), the same arguments and the arena cap. Returns only if the
/// cap is already set or the exec failed (then the process carries on without it). Must run
/// before any thread is started.
pub fn restart_with_arena_cap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let current = std::env::var("GLIBC_TUNABLES").ok();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let Some(value) = tunables_with_cap(current.as_deref(), arenas_for(cores)) else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        let error = command.args(args).env("GLIBC_TUNABLES", value).exec();
        eprintln!(
            "warning: could not restart with glibc's arena cap ({error}); carrying on without it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{arenas_for, tunables_with_cap};

    #[test]
    fn the_cap_is_added_once_and_an_operators_own_is_kept() {
        assert_eq!(
            tunables_with_cap(None, 2).as_deref(),
            Some("glibc.malloc.arena_max=2")
        );
        assert_eq!(
            tunables_with_cap(Some(""), 4).as_deref(),
            Some("glibc.malloc.arena_max=4")
        );
        assert_eq!(
            tunables_with_cap(Some("glibc.malloc.tcache_count=0"), 2).as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=2")
        );
        // Already capped (by the restart itself, or by the operator): nothing to do, no loop.
        assert_eq!(tunables_with_cap(Some("glibc.malloc.arena_max=2"), 2), None);
        assert_eq!(
            tunables_with_cap(Some("glibc.malloc.check=0:glibc.malloc.arena_max=16"), 2),
            None
        );
        assert_eq!(arenas_for(1), 2);
        assert_eq!(arenas_for(2), 2);
        assert_eq!(arenas_for(6), 6);
        assert_eq!(arenas_for(64), 8);
    }
}
