//! Finds libllmk for the linker, in this order:
//!
//! 1. `$LLMK_LIB_DIR`, a directory holding `libllmk.so`;
//! 2. `pkg-config --libs-only-L llmk` (`$PKG_CONFIG` names another pkg-config; `$PKG_CONFIG_PATH`
//!    finds `llmk.pc`, or `llmk-uninstalled.pc` in a build directory);
//! 3. the linker's default search path, with a warning saying how to point at the library.
//!
//! The library is linked dynamically and no rpath is set: at run time the dynamic loader finds
//! `libllmk.so.0` as for any shared library (`LD_LIBRARY_PATH`, `ldconfig`).

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{self, Command};

const LIBRARY_FILE: &str = "libllmk.so";

fn main() {
    for var in [
        "LLMK_LIB_DIR",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if let Some(dir) = env::var_os("LLMK_LIB_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.join(LIBRARY_FILE).is_file() {
            eprintln!(
                "error: LLMK_LIB_DIR is {}, but there is no {LIBRARY_FILE} in it; point it at \
                 the directory of the built library (e.g. the CMake build directory)",
                dir.display()
            );
            process::exit(1);
        }
        println!("cargo:rustc-link-search=native={}", dir.display());
    } else {
        match pkg_config_dirs() {
            // No -L at all: pkg-config found llmk in a directory the linker searches anyway.
            Ok(dirs) => {
                for dir in dirs {
                    println!("cargo:rustc-link-search=native={dir}");
                }
            }
            Err(why) => println!(
                "cargo:warning={why}; linking -lllmk from the linker's default search \
                 path. If {LIBRARY_FILE} is not found, set LLMK_LIB_DIR to the directory that \
                 holds it, or add the directory of llmk.pc to PKG_CONFIG_PATH."
            ),
        }
    }
    println!("cargo:rustc-link-lib=dylib=llmk");
}

/// The `-L` directories of `pkg-config --libs-only-L llmk`, or why pkg-config gave none.
fn pkg_config_dirs() -> Result<Vec<String>, String> {
    let program = env::var_os("PKG_CONFIG").unwrap_or_else(|| OsString::from("pkg-config"));
    let output = Command::new(&program)
        .args(["--libs-only-L", "llmk"])
        .output()
        .map_err(|e| {
            let program = program.to_string_lossy();
            format!("LLMK_LIB_DIR is not set and {program} did not run ({e})")
        })?;
    if !output.status.success() {
        return Err(format!(
            "LLMK_LIB_DIR is not set and pkg-config does not know llmk ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .next()
                .unwrap_or("no message")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-L"))
        .map(str::to_owned)
        .collect())
}
