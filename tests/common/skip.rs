//! How a test that cannot run says so. Shared by every test binary (`#[path]`) and by the
//! library's store tests, so the test command (`./test`) can count the skips at its end.
//!
//! A skip is written to stderr (past the harness's capture, so it is seen in the run) and, when
//! `HOOKD_SKIP_LOG` names a file, appended to it as one `test<TAB>why` line. The test is named by
//! its thread, which the harness names after the test.

/// Says that a test was skipped and why; the caller returns without asserting anything.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
    let Some(log) = std::env::var_os("HOOKD_SKIP_LOG") else {
        return;
    };
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or(what);
    let line = format!("{}\t{}\n", one_line(test), one_line(why));
    // One write of one short line in append mode: lines from parallel tests do not interleave.
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = file.write_all(line.as_bytes());
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}
