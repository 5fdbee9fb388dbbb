//! What the server processes cost, from /proc: CPU time (utime + stime, in
//! clock ticks) and resident memory of every process in the given process
//! groups (an Apache instance is its parent and all its children, which
//! share the parent's group; the standalone server leads its own).

use std::collections::HashMap;
use std::fs;

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pgrp: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    // rest: " state ppid pgrp session tty_nr tpgid flags minflt cminflt
    // majflt cmajflt utime stime ..." (fields 3, 4, 5, ... of proc(5)).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Stat {
        pgrp,
        cpu_ticks: utime + stime,
    })
}

/// Every process whose group is one of `pgids`, with its stat.
pub fn processes(pgids: &[u32]) -> HashMap<u32, Stat> {
    let mut found = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(line) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&line) {
            if pgids.contains(&stat.pgrp) {
                found.insert(pid, stat);
            }
        }
    }
    found
}

/// CPU ticks the groups used between two snapshots. A process that
/// appeared in between counts from zero; one that exited in between is lost
/// (neither happens while a benchmark runs: the MPM keeps its children).
pub fn ticks_between(before: &HashMap<u32, Stat>, after: &HashMap<u32, Stat>) -> u64 {
    after
        .iter()
        .map(|(pid, s)| {
            s.cpu_ticks
                .saturating_sub(before.get(pid).map_or(0, |b| b.cpu_ticks))
        })
        .sum()
}

/// CPU ticks this process has used.
pub fn own_ticks() -> u64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|l| parse_stat(&l))
        .map_or(0, |s| s.cpu_ticks)
}

/// Resident set size of each process in the groups, in bytes.
pub fn rss_bytes(pgids: &[u32], page_size: u64) -> HashMap<u32, u64> {
    processes(pgids)
        .keys()
        .filter_map(|pid| {
            let statm = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
            let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
            Some((*pid, pages * page_size))
        })
        .collect()
}

/// Threads of every process in the groups, all told.
pub fn threads(pgids: &[u32]) -> usize {
    processes(pgids)
        .keys()
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/task")).ok())
        .map(|tasks| tasks.count())
        .sum()
}

/// How much the processes present in both snapshots grew, in bytes (a
/// process that came or went in between would only add noise).
pub fn rss_growth(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> i64 {
    after
        .iter()
        .filter_map(|(pid, a)| Some(*a as i64 - *before.get(pid)? as i64))
        .sum()
}

/// `getconf NAME` as a number (CLK_TCK, PAGESIZE).
pub fn getconf(name: &str) -> Result<u64, String> {
    let out = std::process::Command::new("getconf")
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run getconf {name}: {e}"))?;
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
        format!(
            "getconf {name} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "4242 (apache2 (x) y) S 1 4242 4242 0 -1 4194624 500 0 0 0 117 23 0 0 20 0 27 0 \
                    100 0 0 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pgrp: 4242,
                cpu_ticks: 140
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_found_in_its_group() {
        let me = std::process::id();
        let line = fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let pgrp = parse_stat(&line).unwrap().pgrp;
        assert!(processes(&[pgrp]).contains_key(&me));
        assert!(rss_bytes(&[pgrp], 4096)[&me] > 0);
    }

    #[test]
    fn memory_growth_of_the_processes_in_both_snapshots() {
        let before = HashMap::from([(1, 1000), (2, 5000)]);
        let after = HashMap::from([(1, 1500), (3, 9000)]);
        assert_eq!(rss_growth(&before, &after), 500);
    }

    #[test]
    fn new_processes_count_from_zero() {
        let s = |t| Stat {
            pgrp: 1,
            cpu_ticks: t,
        };
        let before = HashMap::from([(10, s(100)), (11, s(5))]);
        let after = HashMap::from([(10, s(150)), (12, s(7))]);
        assert_eq!(ticks_between(&before, &after), 57);
    }
}
