//! Measuring: a bench-wide microsecond clock, a lock-free latency histogram, and the
//! process's CPU time and peak memory over one scenario.
//!
//! The one idea to know: hookd and the bench share this process, so CPU is split by thread.
//! hookd runs on its own tokio runtime (threads named `hookd-rt`, plus its SQLite writer,
//! sync and reader threads); the bench's load generator and receiver run on threads named
//! `bench-rt`.
//! Peak RSS is the whole process (hookd plus the small, fixed-size bench state).
//!
//! On PostgreSQL the server's own CPU is measured from outside, per process: every process
//! whose `/proc/<pid>/comm` is `postgres` (the bench's backends and the shared background
//! workers), read at the start and the finish of a measurement. Backends serving other
//! databases (other clients of a shared server) are left out and reported on their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::{pg_database_prefix, Backend};

/// Microseconds since the bench started; the bench stamps this into every published message.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Values below this are stored exactly; above it, 64 buckets per power of two (≤1.6% error).
const LINEAR: usize = 128;
const SUB_BITS: u32 = 6;
/// Largest value kept apart from `max`: 2^40 µs, about twelve days.
const TOP_EXP: u32 = 40;
const BUCKETS: usize = LINEAR + (TOP_EXP as usize - 7) * (1 << SUB_BITS);

fn bucket_of(v: u64) -> usize {
    let v = v.min((1u64 << TOP_EXP) - 1);
    if v < LINEAR as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR + (exp as usize - 7) * (1 << SUB_BITS) + sub as usize
}

/// The largest value that falls into bucket `i`.
fn bucket_top(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let exp = ((i - LINEAR) >> SUB_BITS) as u32 + 7;
    let sub = ((i - LINEAR) & ((1 << SUB_BITS) - 1)) as u64;
    (((1 << SUB_BITS) + sub + 1) << (exp - SUB_BITS)) - 1
}

/// A log-linear histogram of microsecond values that many tasks record into at once.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A histogram frozen for reading.
#[derive(Clone)]
pub struct Snapshot {
    buckets: Vec<u64>,
    pub count: u64,
    sum: u64,
    pub max: u64,
}

impl Snapshot {
    /// The value at quantile `q` (0..=1), in µs: the top of the bucket holding that rank.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_top(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum as f64 / self.count as f64 / 1000.0
            },
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.max),
        }
    }

    /// The percentile curve as (percentile 0..100, ms) points, spaced evenly on the
    /// "nines" axis −log10(1 − q), from the median-free start (q = 0) to the max.
    pub fn curve(&self) -> Vec<[f64; 2]> {
        if self.count == 0 {
            return Vec::new();
        }
        let last = (self.count as f64).log10();
        let steps = 60;
        let mut points: Vec<[f64; 2]> = (0..steps)
            .map(|i| {
                let nines = last * i as f64 / steps as f64;
                let q = 1.0 - 10f64.powf(-nines);
                [q * 100.0, self.quantile(q) as f64 / 1000.0]
            })
            .collect();
        points.push([100.0, self.max as f64 / 1000.0]);
        points
    }
}

/// Latency figures in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What the process used while a scenario ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub wall_s: f64,
    /// CPU time over wall time, in percent of one core, for the whole process.
    pub cpu_total_pct: f64,
    /// The same for hookd's threads only (everything not named `bench-rt`).
    pub cpu_hookd_pct: Option<f64>,
    /// The same for the bench's load generator and receiver.
    pub cpu_bench_pct: Option<f64>,
    /// hookd's CPU time in seconds (what `cpu_hookd_pct` is a share of the wall time of).
    pub cpu_hookd_s: Option<f64>,
    /// PostgreSQL's CPU in percent of one core: its background processes and the backends
    /// of the bench's databases (null on SQLite, or where there is no /proc).
    pub cpu_postgres_pct: Option<f64>,
    /// The same in seconds.
    pub cpu_postgres_s: Option<f64>,
    /// PostgreSQL backends serving other databases (other clients of a shared server),
    /// left out of `cpu_postgres_pct`; well above zero means the server was not the
    /// bench's alone during the measurement.
    pub cpu_postgres_others_pct: Option<f64>,
    /// Largest resident set size seen during the scenario, in MiB.
    pub peak_rss_mb: Option<f64>,
    /// Resident set size when the scenario's measurement started, in MiB.
    pub start_rss_mb: Option<f64>,
    /// How the peak was found: `VmHWM` (kernel high-water mark, reset at the start),
    /// `sampled` (VmRSS read every 50 ms) or `maxrss` (process lifetime, getrusage).
    pub rss_method: String,
    /// The machine's 1-minute load average when the scenario ended: well above what the
    /// bench itself adds (about 1.5) means something else competed for the CPUs.
    pub load_avg_1m: Option<f64>,
}

/// A running measurement of CPU and memory; `finish` reports it.
/// With `--external`: the `hookd serve` process whose CPU is hookd's (instead of this
/// process's hookd threads), and the database whose PostgreSQL backends count as the
/// bench's (instead of those this process created).
pub static EXTERNAL: OnceLock<ExternalTarget> = OnceLock::new();

pub struct ExternalTarget {
    /// Its processes (two nodes: both; empty: hookd's CPU is not known).
    pub pids: Vec<u32>,
    pub database: Option<String>,
}

/// User plus system CPU time of process `pid` (its threads, exited ones included).
fn pid_cpu(pid: u32) -> Option<Duration> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu, _) = cpu_and_start(&stat)?;
    Some(Duration::from_secs_f64(cpu / ticks))
}

/// The CPU of the external hookd processes together (None without their pids, or when one
/// cannot be read).
fn external_cpu() -> Option<Duration> {
    let pids = &EXTERNAL.get()?.pids;
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| pid_cpu(pid)).sum()
}

pub struct UsageMeter {
    started: Instant,
    external_cpu: Option<Duration>,
    cpu_total: Duration,
    cpu_bench: Option<Duration>,
    hwm_reset: bool,
    start_rss: Option<u64>,
    sampled_peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    postgres: Option<PgProcesses>,
}

impl UsageMeter {
    /// Starts measuring: returns freed heap to the OS, resets the RSS high-water mark, and
    /// samples RSS in the background (for kernels where the reset is not allowed). On
    /// PostgreSQL it also reads the CPU time of the server's processes.
    pub fn start(backend: Backend) -> Self {
        trim_heap();
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let start_rss = status_kib("VmRSS:");
        let sampled_peak = Arc::new(AtomicU64::new(start_rss.unwrap_or(0)));
        let sampling = Arc::new(AtomicBool::new(true));
        if start_rss.is_some() {
            let (peak, on) = (sampled_peak.clone(), sampling.clone());
            std::thread::Builder::new()
                .name("bench-rss".into())
                .spawn(move || {
                    while on.load(Ordering::Relaxed) {
                        if let Some(kib) = status_kib("VmRSS:") {
                            peak.fetch_max(kib, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .expect("spawning the RSS sampler");
        }
        Self {
            started: Instant::now(),
            external_cpu: external_cpu(),
            cpu_total: process_cpu(),
            cpu_bench: bench_threads_cpu(),
            hwm_reset,
            start_rss,
            sampled_peak,
            sampling,
            postgres: (backend == Backend::Postgres).then(PgProcesses::read).flatten(),
        }
    }

    pub fn finish(self) -> Usage {
        self.sampling.store(false, Ordering::Relaxed);
        let wall = self.started.elapsed();
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64().max(1e-9);
        let total = process_cpu().saturating_sub(self.cpu_total);
        let bench = match (self.cpu_bench, bench_threads_cpu()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let sampled = self.sampled_peak.load(Ordering::Relaxed);
        let (peak_kib, method) = match status_kib("VmHWM:") {
            Some(hwm) if self.hwm_reset => (Some(hwm.max(sampled)), "VmHWM"),
            _ if sampled > 0 => (Some(sampled), "sampled"),
            _ => (max_rss_kib(), "maxrss"),
        };
        let mb = |kib: u64| kib as f64 / 1024.0;
        let hookd = match (EXTERNAL.get(), self.external_cpu) {
            // hookd runs elsewhere: its processes' CPU (unknown without their pids).
            (Some(_), Some(start)) => external_cpu().map(|now| now.saturating_sub(start)),
            (Some(_), None) => None,
            (None, _) => bench.map(|b| total.saturating_sub(b)),
        };
        let postgres = self
            .postgres
            .as_ref()
            .and_then(|start| Some(PgProcesses::read()?.since(start)));
        Usage {
            wall_s: wall.as_secs_f64(),
            cpu_total_pct: pct(total),
            cpu_hookd_pct: hookd.map(pct),
            cpu_bench_pct: bench.map(pct),
            cpu_hookd_s: hookd.map(|d| d.as_secs_f64()),
            cpu_postgres_pct: postgres.map(|(ours, _)| pct(ours)),
            cpu_postgres_s: postgres.map(|(ours, _)| ours.as_secs_f64()),
            cpu_postgres_others_pct: postgres.map(|(_, others)| pct(others)),
            peak_rss_mb: peak_kib.map(mb),
            start_rss_mb: self.start_rss.map(mb),
            rss_method: method.into(),
            load_avg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok())),
        }
    }
}

/// A `Name:   1234 kB` line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage only writes into the struct we pass; all-zero is a valid rusage.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// User plus system CPU time of the whole process, exited threads included.
fn process_cpu() -> Duration {
    let u = rusage();
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The process's lifetime peak RSS (KiB on Linux, bytes on macOS).
fn max_rss_kib() -> Option<u64> {
    let raw = rusage().ru_maxrss as u64;
    if raw == 0 {
        return None;
    }
    Some(if cfg!(target_os = "macos") { raw / 1024 } else { raw })
}

/// CPU time of the bench's own threads (named `bench-…`, and the main thread, which only
/// waits on the bench runtime), from /proc/self/task; None where there is no /proc.
fn bench_threads_cpu() -> Option<Duration> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid …": the name may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !(name.starts_with("bench") || name == "hookd-bench") {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3, utime 14 and stime 15 (1-based, whole line).
        let time = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        total += (time(14) + time(15)) / ticks;
    }
    Some(Duration::from_secs_f64(total))
}

/// Whose work a PostgreSQL process does, by its process title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PgWork {
    /// A backend (or autovacuum worker) on one of this bench's databases.
    Bench,
    /// The postmaster and background processes (WAL writer, checkpointer …), shared by all.
    Shared,
    /// A backend on some other database: another client of the server.
    Other,
}

/// CPU time of every PostgreSQL process at one moment, by (pid, start time), so a pid that
/// was reused is not mistaken for the process it replaced.
struct PgProcesses(HashMap<(u32, u64), (Duration, PgWork)>);

impl PgProcesses {
    /// Every process whose `/proc/<pid>/comm` is `postgres`; None where there is no /proc.
    fn read() -> Option<Self> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let prefix = match EXTERNAL.get().and_then(|e| e.database.clone()) {
            Some(database) => database,
            None => pg_database_prefix(),
        };
        let mut found = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let dir = entry.path();
            match std::fs::read_to_string(dir.join("comm")) {
                Ok(comm) if comm.trim_end() == "postgres" => {}
                _ => continue,
            }
            let Some((cpu_ticks, started)) = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|stat| cpu_and_start(&stat))
            else {
                continue; // it exited meanwhile
            };
            let title = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let work = pg_work(&String::from_utf8_lossy(&title), &prefix);
            found.insert((pid, started), (Duration::from_secs_f64(cpu_ticks / ticks), work));
        }
        Some(Self(found))
    }

    /// CPU used since `start`: (the bench's backends and the shared processes, other
    /// databases' backends). A process that started meanwhile counts in full. A process
    /// that exited meanwhile is missing from this reading, so its CPU since `start` is lost
    /// from the sum; hookd's pools keep their connections for the whole run, so what is lost
    /// is small (short-lived connections such as the bench's admin one, which runs outside
    /// the measurements anyway).
    fn since(&self, start: &PgProcesses) -> (Duration, Duration) {
        let (mut ours, mut others) = (Duration::ZERO, Duration::ZERO);
        for (key, (now, work)) in &self.0 {
            let before = start.0.get(key).map_or(Duration::ZERO, |(d, _)| *d);
            let used = now.saturating_sub(before);
            match work {
                PgWork::Other => others += used,
                PgWork::Bench | PgWork::Shared => ours += used,
            }
        }
        (ours, others)
    }
}

/// User plus system CPU ticks and the start time (in ticks since boot) from a
/// `/proc/<pid>/stat` line.
fn cpu_and_start(stat: &str) -> Option<(f64, u64)> {
    // "pid (name) state …": the name may hold spaces, so split at the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, starttime 22 (1-based).
    let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    Some(((field(14)? + field(15)?) as f64, field(22)?))
}

/// Reads a PostgreSQL process title (`/proc/<pid>/cmdline`), e.g.
/// `postgres: 15/main: USER DATABASE 127.0.0.1(40622) idle` for a client backend,
/// `postgres: 15/main: autovacuum worker DATABASE`, `postgres: 15/main: walwriter`.
fn pg_work(title: &str, bench_prefix: &str) -> PgWork {
    let tokens: Vec<&str> = title
        .split(|c: char| c == '\0' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    // A client backend: the token before the client address is its database.
    let client = tokens
        .iter()
        .position(|t| *t == "[local]" || (t.ends_with(')') && t.contains('(')))
        .filter(|&i| i >= 3)
        .map(|i| tokens[i - 1]);
    let autovacuum = tokens
        .windows(3)
        .find(|w| w[0] == "autovacuum" && w[1] == "worker")
        .map(|w| w[2]);
    match client.or(autovacuum) {
        Some(db) if db.starts_with(bench_prefix) => PgWork::Bench,
        Some(_) => PgWork::Other,
        None => PgWork::Shared,
    }
}

/// Hands freed heap back to the OS so a scenario's RSS does not include the last one's.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for v in [0, 1, 127, 128, 129, 130, 1000, 12_345, 1 << 30, (1 << 40) - 1] {
            let i = bucket_of(v);
            assert!(bucket_top(i) >= v, "{v}");
            assert!(i == 0 || bucket_top(i - 1) < v, "{v}");
            assert!(bucket_top(i) as f64 <= v as f64 * 1.016 + 1.0, "{v}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn postgres_titles() {
        let p = "hookd_bench_42_";
        let work = |t: &str| pg_work(t, p);
        assert_eq!(
            work("postgres: 15/main: postgres hookd_bench_42_0a 127.0.0.1(40622) idle"),
            PgWork::Bench
        );
        assert_eq!(
            work("postgres: postgres hookd_bench_42_0a [local] UPDATE"),
            PgWork::Bench
        );
        assert_eq!(
            work("postgres: 15/main: postgres hookd_t_5d71 127.0.0.1(40622) idle"),
            PgWork::Other
        );
        assert_eq!(
            work("postgres: 15/main: autovacuum worker hookd_bench_42_0a"),
            PgWork::Bench
        );
        assert_eq!(work("postgres: 15/main: autovacuum worker other"), PgWork::Other);
        assert_eq!(work("postgres: 15/main: walwriter "), PgWork::Shared);
        assert_eq!(work("postgres: 15/main: background writer "), PgWork::Shared);
        assert_eq!(
            work("/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main\0"),
            PgWork::Shared
        );
    }

    #[test]
    fn stat_fields() {
        let stat =
            "2218 (postgres) S 2217 2217 2217 0 -1 4194560 95 0 0 0 7 12 0 0 20 0 1 0 4321 223 12 18446744073709551615";
        assert_eq!(cpu_and_start(stat), Some((19.0, 4321)));
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let s = h.snapshot();
        assert!((s.quantile(0.5) as f64 - 5000.0).abs() < 100.0);
        assert!((s.quantile(0.99) as f64 - 9900.0).abs() < 200.0);
        assert_eq!(s.quantile(1.0), 10_000);
        assert_eq!(s.summary().count, 10_000);
    }
}
