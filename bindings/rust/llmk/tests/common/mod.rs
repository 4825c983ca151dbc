//! Helpers shared by the integration tests.

use std::io::Write;

use llmk::F16;

/// Writes a line straight to stderr, past libtest's capture of `print!` and `eprint!`, so that it
/// shows in the output of a passing test too (a skipped check must be visible).
pub fn announce(line: &str) {
    // A line that cannot be written must not fail the test.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `n` values in `[-scale, scale)`, rounded to f16, from a 64-bit LCG seeded with `seed`.
#[allow(dead_code)] // not every test crate that shares this module draws f16 values
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<F16> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32; // [0, 1), exact in f32
            F16::from_f32(scale * (2.0 * unit - 1.0))
        })
        .collect()
}
