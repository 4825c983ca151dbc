//! Helpers shared by the integration tests.

use std::io::Write;

/// Writes a line straight to stderr, past libtest's capture of `print!` and `eprint!`, so that it
/// shows in the output of a passing test too (a skipped check must be visible).
pub fn announce(line: &str) {
    // A line that cannot be written must not fail the test.
    let _ = writeln!(std::io::stderr(), "{line}");
}
