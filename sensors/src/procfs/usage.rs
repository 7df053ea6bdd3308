//! This process's own resource use, from `/proc/self`, for the node's
//! process metrics.

/// What this process holds and has used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Resident memory.
    pub resident_bytes: u64,
    /// User and system CPU time since the process started.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (`None`: unlimited).
    pub max_fds: Option<u64>,
}

/// Reads this process's [`Usage`]; the error names the file that failed.
pub fn own_usage() -> Result<Usage, String> {
    let me =
        procfs::process::Process::myself().map_err(|e| format!("cannot open /proc/self: {e}"))?;
    let stat = me
        .stat()
        .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
    let open_fds = me
        .fd_count()
        .map_err(|e| format!("cannot count /proc/self/fd: {e}"))?;
    let max_fds = match me.limits() {
        Ok(l) => match l.max_open_files.soft_limit {
            procfs::process::LimitValue::Value(v) => Some(v),
            procfs::process::LimitValue::Unlimited => None,
        },
        Err(e) => return Err(format!("cannot read /proc/self/limits: {e}")),
    };
    let ticks = procfs::ticks_per_second().max(1) as f64;
    Ok(Usage {
        resident_bytes: stat.rss.saturating_mul(procfs::page_size()),
        cpu_seconds: (stat.utime.saturating_add(stat.stime)) as f64 / ticks,
        open_fds: open_fds as u64,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_plausible() {
        let before = own_usage().expect("/proc/self is readable");
        assert!(before.resident_bytes > 1 << 20, "{before:?}");
        // stdin, stdout, stderr at least, and the /proc handle itself.
        assert!(before.open_fds >= 3, "{before:?}");
        assert!(before.max_fds.is_none_or(|m| m >= before.open_fds));
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = own_usage().expect("/proc/self is readable");
        assert!(after.cpu_seconds >= before.cpu_seconds);
    }
}
